/*
 * common/klpref.c - splits a patch's reference name into object, symbol
 * and position (klpref.h), the same way on both sides of relive.
 */
#include <stdlib.h>
#include <string.h>

#include "klpref.h"

int relive_klp_ref_parse(const char *s, struct relive_klp_ref *r)
{
	const char *lastdot = strrchr(s, '.'), *symdot, *colon, *p;

	if (!lastdot || lastdot == s || !lastdot[1])
		return -1;
	for (p = lastdot + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	r->sympos = strtoul(lastdot + 1, NULL, 10);
	colon = strchr(s, ':');
	if (colon && colon > s && colon < lastdot - 1) {
		r->obj = s;
		r->objlen = (size_t)(colon - s);
		r->sym = colon + 1;
		r->symlen = (size_t)(lastdot - colon - 1);
		return 0;
	}
	for (symdot = lastdot - 1; symdot > s && *symdot != '.'; symdot--)
		;
	if (symdot <= s || symdot == lastdot - 1)
		return -1;
	r->obj = s;
	r->objlen = (size_t)(symdot - s);
	r->sym = symdot + 1;
	r->symlen = (size_t)(lastdot - symdot - 1);
	return 0;
}
