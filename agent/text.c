/*
 * agent/text.c - the few string operations a request makes, without the C
 * library's formatting and scanning engines.
 *
 * Why: a request of the agent runs on caches that the rest of the machine
 * has just used.  With a thousand processes alive (`relive patch --all`),
 * most of a loading request's CPU time is spent fetching its code and data
 * again, not executing it, so what the request runs through matters more
 * than how many steps it takes.  The request called snprintf 14 times and
 * sscanf 5 times, nearly all to copy a string or to read a number from a
 * /proc file: each first call pulls the C library's printf or scanf engine
 * (several kilobytes of code each, with their tables) into the caches for a
 * job a loop of a few instructions does.  docs/performance.md ("Many
 * processes", round 19) has the measurements.
 *
 * Messages (agent_msg, agent_log) keep vsnprintf: they are the rare path.
 */
#include <stdint.h>
#include <string.h>

#include "agent.h"

size_t text_copy(char *dst, size_t size, const char *src)
{
	return text_copyn(dst, size, src, SIZE_MAX);
}

size_t text_copyn(char *dst, size_t size, const char *src, size_t n)
{
	size_t len;

	if (!size)
		return 0;
	len = strnlen(src, n < size - 1 ? n : size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
	return len;
}

size_t text_append(char *dst, size_t size, size_t at, const char *src)
{
	if (at >= size)
		return at;
	return at + text_copy(dst + at, size - at, src);
}

size_t text_append_dec(char *dst, size_t size, size_t at, uint64_t v)
{
	char digits[24];
	size_t n = sizeof(digits);

	digits[--n] = '\0';
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return text_append(dst, size, at, digits + n);
}

const char *text_skip_field(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '\n')
		return NULL;
	while (*s && *s != ' ' && *s != '\t' && *s != '\n')
		s++;
	return s;
}

const char *text_u64(const char *s, uint64_t *v, int base)
{
	const char *start;
	uint64_t x = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (base == 16 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	start = s;
	for (;; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			break;
		if (x > (UINT64_MAX - d) / (unsigned)base)
			return NULL; /* does not fit */
		x = x * (unsigned)base + d;
	}
	if (s == start)
		return NULL;
	*v = x;
	return s;
}
