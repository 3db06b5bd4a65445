/*
 * examples/client.c - a tiny client for examples/server.c.
 *
 *     client PORT REQUEST
 *         sends REQUEST to 127.0.0.1:PORT and prints the answer line.
 *     client -l [-a ANSWER]... PORT REQUEST
 *         sends REQUEST again and again (a new connection every 50
 *         requests) until SIGINT or SIGTERM, then prints
 *         "requests=N failures=F" and how often each answer came.  A
 *         failure is a connection or I/O error, or, when -a is given, an
 *         answer that is none of the ANSWERs.  Exit status 1 if F > 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ANSWERS 16

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int connect_to(int port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((unsigned short)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends req and reads one answer line into out (without newline).
 * Returns 0, or -1 on an error (errno EINTR when a signal stopped it). */
static int request(int fd, const char *req, char *out, size_t size)
{
	char line[1024];
	size_t len, off = 0, have = 0;

	/* One send per request line: a request split over two segments would
	 * wait for the server's delayed ACK (Nagle). */
	len = (size_t)snprintf(line, sizeof(line), "%s\n", req);
	if (len >= sizeof(line)) {
		errno = EMSGSIZE;
		return -1;
	}
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	while (have < size - 1) {
		ssize_t n = recv(fd, out + have, 1, 0);

		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		if (out[have] == '\n') {
			out[have] = '\0';
			return 0;
		}
		have++;
	}
	errno = EMSGSIZE;
	return -1;
}

int main(int argc, char **argv)
{
	const char *expect[MAX_ANSWERS];
	int nexpect = 0, loop = 0, opt, fd = -1, port;
	struct {
		char text[256];
		unsigned long count;
	} seen[MAX_ANSWERS];
	int nseen = 0;
	unsigned long requests = 0, failures = 0;
	char out[256];
	struct sigaction sa = { .sa_handler = on_signal };

	while ((opt = getopt(argc, argv, "la:")) != -1) {
		if (opt == 'l') {
			loop = 1;
		} else if (opt == 'a' && nexpect < MAX_ANSWERS) {
			expect[nexpect++] = optarg;
		} else {
			fprintf(stderr, "usage: client [-l] [-a ANSWER]... PORT REQUEST\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: client [-l] [-a ANSWER]... PORT REQUEST\n");
		return 2;
	}
	port = atoi(argv[optind]);

	if (!loop) {
		fd = connect_to(port);
		if (fd < 0 || request(fd, argv[optind + 1], out, sizeof(out)) < 0) {
			fprintf(stderr, "client: 127.0.0.1:%d: %s\n", port,
				strerror(errno));
			return 1;
		}
		printf("%s\n", out);
		return 0;
	}

	/* No SA_RESTART: a signal ends a blocked connect or recv at once. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop) {
		int ok;

		if (fd < 0 && (fd = connect_to(port)) < 0) {
			if (stop)
				break;
			failures++;
			requests++;
			continue;
		}
		if (request(fd, argv[optind + 1], out, sizeof(out)) < 0) {
			if (stop && errno == EINTR)
				break;
			failures++;
			requests++;
			close(fd);
			fd = -1;
			continue;
		}
		requests++;
		ok = nexpect == 0;
		for (int i = 0; i < nexpect; i++)
			ok |= strcmp(out, expect[i]) == 0;
		if (!ok)
			failures++;
		for (int i = 0; i <= nseen && i < MAX_ANSWERS; i++) {
			if (i == nseen) {
				snprintf(seen[i].text, sizeof(seen[i].text), "%s", out);
				seen[i].count = 0;
				nseen++;
			}
			if (strcmp(seen[i].text, out) == 0) {
				seen[i].count++;
				break;
			}
		}
		if (requests % 50 == 0) {
			close(fd);
			fd = -1;
		}
	}
	printf("requests=%lu failures=%lu\n", requests, failures);
	for (int i = 0; i < nseen; i++)
		printf("  %lu x \"%s\"\n", seen[i].count, seen[i].text);
	return failures ? 1 : 0;
}
