/* config_watch.c - hot_reload's watch of the configuration file (see
 * config_watch.h). */
#include "config_watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define WATCH_FILE_EVENTS (IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define WATCH_DIR_EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)

/* true when the file differs from the last look (or appeared/vanished) */
static bool watch_snapshot(struct config_watch *w)
{
    struct stat st;
    if (stat(w->path, &st) != 0) {
        bool was = w->known;
        if (was)
            log_warn("hot_reload: %s: %s", w->path, strerror(errno));
        w->known = false;
        return false;
    }
    bool changed = !w->known || st.st_dev != w->dev || st.st_ino != w->ino || st.st_mode != w->mode ||
                   st.st_size != w->size || st.st_mtim.tv_sec != w->mtime.tv_sec ||
                   st.st_mtim.tv_nsec != w->mtime.tv_nsec;
    w->known = true;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->mode = st.st_mode;
    w->size = st.st_size;
    w->mtime = st.st_mtim;
    return changed;
}

void config_watch_close(struct config_watch *w)
{
    if (w->fd >= 0 && close(w->fd) != 0)
        log_warn("close inotify: %s", strerror(errno));
    w->fd = -1;
    w->path[0] = '\0';
}

void config_watch_open(struct config_watch *w, const char *path)
{
    config_watch_close(w);
    if (!path || !*path)
        return;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->dir, sizeof w->dir, "%s", path);
    char *slash = strrchr(w->dir, '/');
    if (slash == w->dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(w->dir, sizeof w->dir, ".");
    w->base = strrchr(w->path, '/') ? strrchr(w->path, '/') + 1 : w->path;
    w->known = false;
    w->pending = false;
    w->due_ms = 0;
    watch_snapshot(w);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || (w->wd_dir = inotify_add_watch(w->fd, w->dir, WATCH_DIR_EVENTS)) < 0) {
        log_warn("hot_reload: inotify on %s: %s; checking the file every second instead", w->dir,
                 strerror(errno));
        if (w->fd >= 0 && close(w->fd) != 0)
            log_warn("close inotify: %s", strerror(errno));
        w->fd = -1;
    } else {
        w->wd_file = inotify_add_watch(w->fd, w->path, WATCH_FILE_EVENTS); /* -1 until it exists */
    }
    log_info("hot_reload: watching %s", w->path);
}

bool config_watch_poll(struct config_watch *w, uint64_t now)
{
    if (!w->path[0])
        return false;
    if (w->fd < 0) {
        if (now < w->due_ms)
            return false;
        w->due_ms = now + 1000;
        return watch_snapshot(w);
    }
    _Alignas(struct inotify_event) char buf[4096];
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log_warn("hot_reload: inotify read: %s", strerror(errno));
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->wd == w->wd_file || (ev->wd == w->wd_dir && ev->len && strcmp(ev->name, w->base) == 0)) {
                w->pending = true;
                w->due_ms = now + 100;
            }
            if (ev->wd == w->wd_file && (ev->mask & IN_IGNORED))
                w->wd_file = -1;
            p += sizeof *ev + ev->len;
        }
    }
    if (!w->pending || now < w->due_ms)
        return false;
    w->pending = false;
    /* the file may be a new inode now: watch that one */
    int wd = inotify_add_watch(w->fd, w->path, WATCH_FILE_EVENTS);
    if (wd >= 0)
        w->wd_file = wd;
    return watch_snapshot(w);
}
