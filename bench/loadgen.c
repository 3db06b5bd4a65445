/*
 * bench/loadgen.c - a closed-loop load generator for examples/server and
 * Redis (inline commands; a CRLF ending an answer counts as a newline).
 *
 *     loadgen PORT NCONN SECONDS REQUEST ANSWER...
 *
 * NCONN threads each open one connection and, for SECONDS, send REQUEST
 * and wait for its answer line before sending the next.  A failure is a
 * connection or I/O error or an answer that is none of the ANSWERs.
 * Answers are counted per 100 ms bucket.  Output, one line each:
 *     start NS            CLOCK_MONOTONIC time of bucket 0, in ns
 *     buckets C0,C1,...   answered requests per bucket
 *     failures F          total failures
 *     answers A1=N1 ...   how often each ANSWER came
 * Exit status 1 if F > 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_NS 100000000L
#define MAX_BUCKETS 1000
#define MAX_ANSWERS 8

static int port, nanswers;
static long start_ns, end_ns;
static const char *request;
static const char *answers[MAX_ANSWERS];
static _Atomic unsigned long buckets[MAX_BUCKETS];
static _Atomic unsigned long failures, answer_count[MAX_ANSWERS];

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int connect_to(void)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((unsigned short)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request and its answer; returns the answer's index or -1. */
static int one_request(int fd, const char *req, size_t len)
{
	char buf[256];
	size_t have = 0;

	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	for (;;) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		char *nl;

		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			if (nl > buf && nl[-1] == '\r') /* Redis: CRLF */
				nl[-1] = '\0';
			for (int i = 0; i < nanswers; i++)
				if (!strcmp(buf, answers[i]))
					return i;
			return -1;
		}
		if (have == sizeof(buf) - 1)
			return -1;
	}
}

static void *conn_main(void *arg)
{
	char req[256];
	size_t len = (size_t)snprintf(req, sizeof(req), "%s\n", request);
	int fd = connect_to();

	for (long t = now_ns(); t < end_ns; t = now_ns()) {
		int a;

		if (fd < 0) {
			failures++;
			usleep(10000);
			fd = connect_to();
			continue;
		}
		a = one_request(fd, req, len);
		t = now_ns();
		if (a < 0) {
			failures++;
			close(fd);
			fd = -1;
			continue;
		}
		answer_count[a]++;
		if (t >= start_ns && (t - start_ns) / BUCKET_NS < MAX_BUCKETS)
			buckets[(t - start_ns) / BUCKET_NS]++;
	}
	if (fd >= 0)
		close(fd);
	return arg;
}

int main(int argc, char **argv)
{
	int nconn;
	double secs;
	long nb;
	pthread_t t[64];

	if (argc < 6) {
		fprintf(stderr, "usage: loadgen PORT NCONN SECONDS REQUEST "
			"ANSWER...\n");
		return 2;
	}
	port = atoi(argv[1]);
	nconn = atoi(argv[2]);
	secs = atof(argv[3]);
	request = argv[4];
	for (int i = 5; i < argc && nanswers < MAX_ANSWERS; i++)
		answers[nanswers++] = argv[i];
	if (nconn < 1 || nconn > 64 || secs <= 0 || secs > 90) {
		fprintf(stderr, "loadgen: bad NCONN or SECONDS\n");
		return 2;
	}
	start_ns = now_ns();
	end_ns = start_ns + (long)(secs * 1e9);
	for (int i = 0; i < nconn; i++)
		pthread_create(&t[i], NULL, conn_main, NULL);
	for (int i = 0; i < nconn; i++)
		pthread_join(t[i], NULL);
	nb = (end_ns - start_ns + BUCKET_NS - 1) / BUCKET_NS;
	printf("start %ld\nbuckets ", start_ns);
	for (long i = 0; i < nb && i < MAX_BUCKETS; i++)
		printf("%s%lu", i ? "," : "", buckets[i]);
	printf("\nfailures %lu\nanswers", failures);
	for (int i = 0; i < nanswers; i++)
		printf(" %s=%lu", answers[i], answer_count[i]);
	printf("\n");
	return failures ? 1 : 0;
}
