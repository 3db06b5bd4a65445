/*
 * abi_pagecross: page_cross() of the abi target, whose first five bytes
 * lie on two pages, returns x + 100 instead of x + 1.
 */
#include <relive/livepatch.h>

static int new_page_cross(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "page_cross", .new_func = new_page_cross },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
