/*
 * The toy's main loop: one command per line on stdin, one answer line on
 * stdout ("ready" first), so a test can ask and wait for each answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toy.h"

int main(void)
{
	char line[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "compute ", 8))
			printf("%d\n", compute(atoi(line + 8)));
		else if (!strcmp(line, "served"))
			printf("%d\n", served());
		else if (!strncmp(line, "setlimit ", 9))
			set_limit(atoi(line + 9)), printf("ok\n");
		else if (!strcmp(line, "limit"))
			printf("%d\n", limit_value());
		else if (!strcmp(line, "greeting"))
			printf("%s\n", greeting());
		else if (!strcmp(line, "where"))
			printf("%s\n", where());
		else if (!strncmp(line, "check ", 6))
			printf("%d\n", lib_check(atoi(line + 6)));
		else if (!strcmp(line, "hits"))
			printf("%d\n", lib_hits());
		else if (!strcmp(line, "fast"))
			printf("%d\n", fast_one());
		else if (!strcmp(line, "verbosity"))
			printf("%d\n", verbosity);
		else if (!strcmp(line, "quit"))
			break;
		else
			printf("unknown command\n");
	}
	return 0;
}
