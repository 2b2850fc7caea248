/* A static test app for the launcher tests: runs the commands given as arguments, in order.
 *   env NAME | cwd | id | hostname | cat PATH | write PATH TEXT | exists PATH | exit N
 *   sleep SECONDS | alloc MEGABYTES | spin SECONDS | serve PORT TEXT | client PORT
 *   yes (writes "y" lines forever, ignoring write errors: only a signal ends it)
 */
#include <arpa/inet.h>
#include <errno.h>
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
            int port = atoi(argv[++i]);
            for (int attempt = 0; attempt < 30; attempt++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
        } else {
            printf("unknown command %s\n", cmd);
            return 99;
        }
    }
    return 0;
}
