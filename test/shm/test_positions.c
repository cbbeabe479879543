/* test_positions.c - tests of the position store (shm/positions.c): rows
 * found again after a reopen, new rows claimed after the used ones, and a
 * fresh file that stays sparse (only the pages of the rows in use are
 * written, so only they take memory and disk). */
#include "shm/positions.h"
#include "test/shm/shm_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], path[128];

static struct positions *open_store(bool *created)
{
    char err[512];
    struct positions *p = positions_open(path, 1000, created, err, sizeof err);
    if (!p) fprintf(stderr, "  positions_open %s: %s\n", path, err);
    return p;
}

static void url_of(char *buf, size_t len, unsigned i)
{
    snprintf(buf, len, "https://ct.example/log%u/", i);
}

static void test_rows_and_sparse_file(void)
{
    bool created = false;
    struct positions *p = open_store(&created);
    CHECK(p != NULL);
    if (!p) return;
    CHECK(created);
    char url[128];
    for (unsigned i = 0; i < 35; i++) {
        url_of(url, sizeof url, i);
        CHECK(positions_row(p, url, false) == NULL);
        struct position_row *r = positions_row(p, url, true);
        CHECK(r != NULL);
        if (r) position_store(r, 1000u + i);
    }
    url_of(url, sizeof url, 7);
    struct position_row *r7 = positions_row(p, url, true);
    CHECK(r7 != NULL && position_known(r7) && position_next(r7) == 1007);
    positions_close(p);

    /* 35 rows of 512 bytes after a 512-byte header: 18,432 bytes, 5 pages
     * written of the 513 KiB file (the whole file before). */
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(st.st_size == 512 + 1024 * 512);
    CHECK((long long)st.st_blocks * 512 <= 32 * 1024);

    p = open_store(&created);
    CHECK(p != NULL);
    if (!p) return;
    CHECK(!created);
    for (unsigned i = 0; i < 35; i++) {
        url_of(url, sizeof url, i);
        struct position_row *r = positions_row(p, url, false);
        CHECK(r != NULL && position_known(r) && position_next(r) == 1000u + i);
    }
    /* a new log gets the row after the used ones */
    url_of(url, sizeof url, 35);
    struct position_row *first = positions_row(p, "https://ct.example/log0/", false);
    struct position_row *n = positions_row(p, url, true);
    CHECK(first != NULL && n == first + 35);
    CHECK(n != NULL && !position_known(n));
    CHECK(positions_row(p, url, false) == n);
    positions_close(p);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cs-positions-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/state.json.positions", dir);
    RUN(test_rows_and_sparse_file);
    unlink(path);
    rmdir(dir);
    return test_report();
}
