/*
 * examples/server.c - a small order-pricing server with a bug, to patch
 * while it runs (scripts/demo.sh).
 *
 *     server [PORT]          (PORT 0 or none: the kernel picks one)
 *
 * Listens on 127.0.0.1, prints "listening on 127.0.0.1:PORT", and serves
 * each connection on one of a pool of worker threads.  Line protocol, one
 * answer line per request:
 *
 *     price UNIT_CENTS QTY  -> "total EUROS.CENTS"
 *     help                  -> the list of requests
 *     quit                  -> "bye", and the connection is closed
 *
 * The pricing rule: orders of BULK_MIN items or more get BULK_DISCOUNT
 * percent off.  order_total_cents() gets the comparison wrong (> instead of
 * >=), so an order of exactly 10 items pays full price.  examples/fix.c is
 * the live patch.
 *
 * The function is kept out of line (noinline), and the server is built
 * with -flive-patching=inline-clone, so that replacing that one function
 * changes the behaviour everywhere it is used.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS 4
#define QUEUE 64
#define BULK_MIN 10
#define BULK_DISCOUNT 10   /* percent */

/* The bug: "10 or more" was written as "more than 10". */
__attribute__((noinline)) long order_total_cents(long unit_cents, long qty)
{
	long total = unit_cents * qty;

	if (qty > BULK_MIN)
		total -= total * BULK_DISCOUNT / 100;
	return total;
}

/* Accepted connections waiting for a worker. */
static int queue[QUEUE];
static unsigned int q_head, q_tail;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_nonfull = PTHREAD_COND_INITIALIZER;

static void enqueue(int fd)
{
	pthread_mutex_lock(&q_lock);
	while (q_tail - q_head == QUEUE)
		pthread_cond_wait(&q_nonfull, &q_lock);
	queue[q_tail++ % QUEUE] = fd;
	pthread_cond_signal(&q_nonempty);
	pthread_mutex_unlock(&q_lock);
}

static int dequeue(void)
{
	int fd;

	pthread_mutex_lock(&q_lock);
	while (q_tail == q_head)
		pthread_cond_wait(&q_nonempty, &q_lock);
	fd = queue[q_head++ % QUEUE];
	pthread_cond_signal(&q_nonfull);
	pthread_mutex_unlock(&q_lock);
	return fd;
}

static int send_line(int fd, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Answers one request line; returns 1 when the client said quit. */
static int answer(const char *req, char *out, size_t size)
{
	long unit, qty;
	char extra;

	if (sscanf(req, "price %ld %ld %c", &unit, &qty, &extra) == 2) {
		if (unit < 0 || qty < 0 || unit > 1000000000L || qty > 1000000L) {
			snprintf(out, size, "error price out of range\n");
		} else {
			long total = order_total_cents(unit, qty);

			snprintf(out, size, "total %ld.%02ld\n", total / 100,
				 total % 100);
		}
	} else if (strcmp(req, "help") == 0) {
		snprintf(out, size, "requests: price UNIT_CENTS QTY | help | quit\n");
	} else if (strcmp(req, "quit") == 0) {
		snprintf(out, size, "bye\n");
		return 1;
	} else {
		snprintf(out, size, "error unknown request (try help)\n");
	}
	return 0;
}

static void serve(int fd)
{
	char buf[1024], out[256];
	size_t have = 0;

	for (;;) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(buf, '\n', have))) {
			int quit;

			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			quit = answer(buf, out, sizeof(out));
			if (send_line(fd, out) < 0 || quit)
				return;
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
		}
		if (have == sizeof(buf)) {
			send_line(fd, "error line too long\n");
			return;
		}
		n = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
	}
}

static void *worker_main(void *arg)
{
	for (;;) {
		int fd = dequeue();

		serve(fd);
		close(fd);
	}
	return arg;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int one = 1, lfd;
	long port = argc > 1 ? strtol(argv[1], NULL, 10) : 0;

	if (port < 0 || port > 65535) {
		fprintf(stderr, "usage: server [PORT]\n");
		return 2;
	}
	addr.sin_port = htons((unsigned short)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
		fprintf(stderr, "server: cannot listen on 127.0.0.1:%ld: %s\n",
			port, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < WORKERS; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, worker_main, NULL) != 0) {
			fprintf(stderr, "server: cannot start a worker\n");
			return 1;
		}
		pthread_detach(t);
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
	fflush(stdout);

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			fprintf(stderr, "server: accept: %s\n", strerror(errno));
			return 1;
		}
		enqueue(fd);
	}
}
