/* LD_PRELOAD shim: log every outbound TCP connect() of a process, exactly.
 *
 * Sampling /proc misses connections that open and close between two samples; interposing
 * connect() sees each one. asyncio, uvloop/libuv and blocking sockets all call libc's
 * connect(). For AF_INET/AF_INET6 stream sockets whose connect succeeded or is in progress,
 * one line "pid dest_ip dest_port monotonic_ns\n" is appended to $PERFAUDIT_CONNECT_LOG with a
 * single write() on an O_APPEND descriptor, so lines from many processes never interleave.
 * Without the variable the shim only forwards the call. errno is preserved for the caller.
 *
 * Built by perfaudit.collect.connections: gcc -O2 -shared -fPIC -o shim.so connect_shim.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static connect_fn real_connect;
static int log_fd = -2; /* -2: not opened yet, -1: no log */
static struct stat log_stat;

/* Our descriptor, (re)opened if the program closed it and the number now names something
 * else (daemons close every descriptor): a log line must never go into a socket. */
static int ensure_log(void) {
    struct stat now;
    if (log_fd >= 0 && fstat(log_fd, &now) == 0 && now.st_dev == log_stat.st_dev &&
        now.st_ino == log_stat.st_ino)
        return log_fd;
    if (log_fd == -1) return -1;
    const char *path = getenv("PERFAUDIT_CONNECT_LOG");
    log_fd = (path && *path) ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (log_fd >= 0 && fstat(log_fd, &log_stat) != 0) {
        close(log_fd);
        log_fd = -1;
    }
    return log_fd;
}

static void log_connect(int fd_log, int fd, const struct sockaddr *addr) {
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return;
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip)) return;
        port = ntohs(a->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip)) return;
        port = ntohs(a->sin6_port);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock of Python's time.monotonic_ns() */
    char line[128];
    int n = snprintf(line, sizeof line, "%d %s %u %lld\n", (int)getpid(), ip, port,
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (n > 0 && n < (int)sizeof line) {
        ssize_t w = write(fd_log, line, (size_t)n);
        (void)w;
    }
}

int connect(int fd, const struct sockaddr *addr, socklen_t addrlen) {
    if (!real_connect) real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    int rc = real_connect(fd, addr, addrlen);
    int saved = errno;
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
        (rc == 0 || saved == EINPROGRESS)) {
        int fd_log = ensure_log();
        if (fd_log >= 0) log_connect(fd_log, fd, addr);
    }
    errno = saved;
    return rc;
}
