/*
 * common/buildid.h - the GNU build-id of an ELF object as it is in memory:
 * its note, read from the PT_NOTE segments the dynamic loader mapped.
 *
 * The file a path names may no longer be the one a process runs (a package
 * upgrade renames a new file over it; the process keeps the old one).  The
 * build-id in the mapped notes is the identity of the code that runs, so the
 * agent compares it with what it reads from files (agent/resolution.c).
 * Pure: it parses bytes it is given, so it is unit-tested with made-up notes.
 */
#ifndef RELIVE_BUILDID_H
#define RELIVE_BUILDID_H

#include <stddef.h>

/*
 * Looks for an NT_GNU_BUILD_ID note (name "GNU") in the note area
 * notes[0..len) whose entries are aligned to align (4 or 8, a PT_NOTE's
 * p_align; anything else counts as 4).  Writes its description in
 * lower-case hex, NUL-terminated, into hex[hexlen].  Returns the number of
 * hex digits, or 0 when there is no such note, the area is malformed, or
 * the hex does not fit.
 */
size_t buildid_from_notes(const void *notes, size_t len, size_t align,
			  char *hex, size_t hexlen);

#endif
