/*
 * common/libpath.h - where relive's own libraries are: beside the running
 * executable (the build directory) or where they are installed.
 */
#ifndef RELIVE_LIBPATH_H
#define RELIVE_LIBPATH_H

#include <stddef.h>

/* The path of file in the directory of the running executable if it is
 * there (readable), else installed.  buf (of len bytes) receives the first
 * one; the result is buf or installed. */
const char *libpath_find(const char *file, const char *installed, char *buf,
			 size_t len);

#endif
