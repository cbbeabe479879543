/* config_watch.h - hot_reload: noticing that the configuration file changed.
 *
 * inotify on the watched file and on its directory (an editor that writes a
 * new file and renames it over the old one replaces the inode; a file that
 * appears later is seen too). An event only says "look": the file's identity
 * (device, inode, mode, size, mtime) decides whether it changed, 100 ms after
 * the last event, since editors write in several steps. Without inotify (the
 * limit of watches reached) the file is stat()ed every second. Never blocks:
 * the supervisor polls it once per loop turn. */
#ifndef CS_CONFIG_WATCH_H
#define CS_CONFIG_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct config_watch {
    int fd;                      /* inotify; -1 = polling (or off when path is "") */
    int wd_dir, wd_file;
    char path[4096], dir[4096];
    const char *base;
    bool pending;
    uint64_t due_ms;
    bool known;
    dev_t dev;
    ino_t ino;
    mode_t mode;
    off_t size;
    struct timespec mtime;
};

/* Starts watching path (NULL = off); closes a previous watch. Initialize
 * with {.fd = -1} before the first call. */
void config_watch_open(struct config_watch *w, const char *path);
void config_watch_close(struct config_watch *w);
/* Once per loop turn: true when the file changed since the last look. */
bool config_watch_poll(struct config_watch *w, uint64_t now_ms);

#endif
