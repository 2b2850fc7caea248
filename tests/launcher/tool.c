/* A static test app for the launcher tests: runs the commands given as arguments, in order.
 *   env NAME | cwd | id | hostname | cat PATH | write PATH TEXT | exists PATH | exit N
 *   sleep SECONDS | alloc MEGABYTES | spin SECONDS | serve PORT TEXT | client [ADDRESS:]PORT
 *   yes (writes "y" lines forever, ignoring write errors: only a signal ends it)
 *   try ATTEMPT: an escape attempt, made in a child so that a seccomp kill is seen too; prints
 *     "try ATTEMPT: ok", "try ATTEMPT: ENAME" or "try ATTEMPT: killed by SIGSYS" where ATTEMPT
 *     is mount | ptrace-init | module | unshare-user | clone-user | keyctl | raw-socket |
 *     read-root (opendir /proc/1/root) | read-environ (/proc/1/environ)
 *   ls PATH (the names in a directory, one line) | tty (the name of stdin's terminal)
 *   winsize (rows and columns of stdin's terminal) | wait-int (until SIGINT)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ENOTSUP: return "ENOTSUP";
    case EFAULT: return "EFAULT";
    case ENOEXEC: return "ENOEXEC";
    case EROFS: return "EROFS";
    default: return "E?";
    }
}

static int child_stack_fn(void *arg) { (void)arg; return 0; }

/* returns 0 on success, or the errno of the refusal */
static int attempt(const char *what) {
    if (!strcmp(what, "mount")) {
        mkdir("/tmp/escape-mnt", 0700);
        return mount("none", "/tmp/escape-mnt", "tmpfs", 0, "") ? errno : 0;
    } else if (!strcmp(what, "ptrace-init")) {
        if (ptrace(PTRACE_SEIZE, 1, NULL, NULL)) return errno;
        ptrace(PTRACE_DETACH, 1, NULL, NULL);
        return 0;
    } else if (!strcmp(what, "module")) {
        return syscall(SYS_init_module, "", (unsigned long)0, "") ? errno : 0;
    } else if (!strcmp(what, "unshare-user")) {
        return unshare(CLONE_NEWUSER) ? errno : 0;
    } else if (!strcmp(what, "clone-user")) {
        static char stack[65536];
        int pid = clone(child_stack_fn, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL);
        if (pid < 0) return errno;
        waitpid(pid, NULL, 0);
        return 0;
    } else if (!strcmp(what, "keyctl")) {
        /* KEYCTL_GET_KEYRING_ID of the session keyring, creating none */
        return syscall(SYS_keyctl, 0, -3, 0) < 0 ? errno : 0;
    } else if (!strcmp(what, "raw-socket")) {
        int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        if (s < 0) return errno;
        close(s);
        return 0;
    } else if (!strcmp(what, "read-root")) {
        DIR *d = opendir("/proc/1/root");
        if (!d) return errno;
        closedir(d);
        return 0;
    } else if (!strcmp(what, "read-environ")) {
        int fd = open("/proc/1/environ", O_RDONLY);
        if (fd < 0) return errno;
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        return n < 0 ? errno : 0;
    }
    return 255;
}

static volatile sig_atomic_t got_int;
static void on_int(int s) { (void)s; got_int = 1; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *cmd = argv[i];
        if (!strcmp(cmd, "env")) {
            const char *v = getenv(argv[++i]);
            printf("env %s=%s\n", argv[i], v ? v : "(unset)");
        } else if (!strcmp(cmd, "cwd")) {
            char buf[4096];
            printf("cwd=%s\n", getcwd(buf, sizeof buf) ? buf : "?");
        } else if (!strcmp(cmd, "id")) {
            printf("uid=%d gid=%d\n", (int)getuid(), (int)getgid());
        } else if (!strcmp(cmd, "hostname")) {
            char buf[256] = "";
            gethostname(buf, sizeof buf);
            printf("hostname=%s\n", buf);
        } else if (!strcmp(cmd, "cat")) {
            FILE *f = fopen(argv[++i], "r");
            if (!f) { printf("cat %s: %s\n", argv[i], strerror(errno)); continue; }
            char buf[4096];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = 0;
            printf("cat %s: %s\n", argv[i], buf);
            fclose(f);
        } else if (!strcmp(cmd, "write")) {
            const char *path = argv[++i], *text = argv[++i];
            FILE *f = fopen(path, "w");
            if (!f) { printf("write %s: %s\n", path, strerror(errno)); continue; }
            fputs(text, f);
            printf("write %s: %s\n", path, fclose(f) == 0 ? "ok" : strerror(errno));
        } else if (!strcmp(cmd, "exists")) {
            struct stat st;
            printf("exists %s: %s\n", argv[i + 1], stat(argv[i + 1], &st) == 0 ? "yes" : "no");
            i++;
        } else if (!strcmp(cmd, "exit")) {
            return atoi(argv[++i]);
        } else if (!strcmp(cmd, "yes")) {
            for (;;) printf("y\n");
        } else if (!strcmp(cmd, "sleep")) {
            sleep(atoi(argv[++i]));
        } else if (!strcmp(cmd, "alloc")) {
            long mb = atol(argv[++i]);
            for (long k = 0; k < mb; k++) {
                char *p = malloc(1 << 20);
                if (!p) { printf("alloc failed at %ld MB\n", k); return 2; }
                memset(p, 1, 1 << 20);
            }
            printf("allocated %ld MB\n", mb);
        } else if (!strcmp(cmd, "spin")) {
            double seconds = atof(argv[++i]), start = now(CLOCK_MONOTONIC);
            volatile unsigned long x = 0;
            while (now(CLOCK_MONOTONIC) - start < seconds) x++;
            printf("spin wall=%.3f cpu=%.3f\n", now(CLOCK_MONOTONIC) - start,
                   now(CLOCK_PROCESS_CPUTIME_ID));
        } else if (!strcmp(cmd, "serve")) {
            int port = atoi(argv[++i]);
            const char *text = argv[++i];
            int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
            a.sin_addr.s_addr = htonl(INADDR_ANY);
            if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
                printf("serve: %s\n", strerror(errno));
                return 3;
            }
            printf("serving on %d\n", port);
            for (;;) {
                int c = accept(s, NULL, NULL);
                if (c < 0) continue;
                write(c, text, strlen(text));
                close(c);
            }
        } else if (!strcmp(cmd, "client")) {
            /* client PORT (127.0.0.1) or client ADDRESS:PORT */
            char host[64] = "127.0.0.1";
            const char *spec = argv[++i], *colon = strrchr(spec, ':');
            if (colon && (size_t)(colon - spec) < sizeof host) {
                memcpy(host, spec, colon - spec);
                host[colon - spec] = 0;
                spec = colon + 1;
            }
            int port = atoi(spec);
            for (int attempt = 0; attempt < 30; attempt++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
                inet_pton(AF_INET, host, &a.sin_addr);
                if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
                    char buf[256];
                    ssize_t n = read(s, buf, sizeof buf - 1);
                    buf[n > 0 ? n : 0] = 0;
                    printf("client got: %s\n", buf);
                    close(s);
                    goto next;
                }
                close(s);
                usleep(100000);
            }
            printf("client: cannot connect to %d\n", port);
            return 4;
        next:;
        } else if (!strcmp(cmd, "try")) {
            const char *what = argv[++i];
            pid_t pid = fork();
            if (pid == 0) _exit(attempt(what));
            int status;
            waitpid(pid, &status, 0);
            if (WIFSIGNALED(status))
                printf("try %s: killed by %s\n", what,
                       WTERMSIG(status) == SIGSYS ? "SIGSYS" : "another signal");
            else if (WEXITSTATUS(status) == 0)
                printf("try %s: ok\n", what);
            else
                printf("try %s: %s\n", what, errname(WEXITSTATUS(status)));
        } else if (!strcmp(cmd, "ls")) {
            DIR *d = opendir(argv[++i]);
            if (!d) { printf("ls %s: %s\n", argv[i], errname(errno)); continue; }
            printf("ls %s:", argv[i]);
            struct dirent *e;
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) printf(" %s", e->d_name);
            printf("\n");
            closedir(d);
        } else if (!strcmp(cmd, "tty")) {
            const char *name = ttyname(0);
            printf("tty=%s\n", name ? name : "not a tty");
        } else if (!strcmp(cmd, "winsize")) {
            struct winsize ws;
            if (ioctl(0, TIOCGWINSZ, &ws)) printf("winsize: %s\n", errname(errno));
            else printf("winsize=%dx%d\n", ws.ws_row, ws.ws_col);
        } else if (!strcmp(cmd, "wait-int")) {
            signal(SIGINT, on_int);
            printf("waiting for SIGINT\n");
            while (!got_int) pause();
            printf("got SIGINT\n");
        } else {
            printf("unknown command %s\n", cmd);
            return 99;
        }
    }
    return 0;
}
