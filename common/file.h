/* file.h - reading a whole stream into memory (a recorded response, a corpus). */
#ifndef CS_FILE_H
#define CS_FILE_H

#include <stddef.h>
#include <stdio.h>

/* Reads f to its end into a malloc'd, NUL-terminated buffer (the NUL is not
 * counted in *len). 0 ok, -1 on a read error or no memory (errno set). */
int file_read_all(FILE *f, char **out, size_t *len);

#endif
