/*
 * common/buildid.c - the GNU build-id note, parsed from bytes in memory
 * (see buildid.h).  Every length is checked against the area before it is
 * used: the notes come from the object's mapping, whatever it holds.
 */
#include <elf.h>
#include <stdint.h>
#include <string.h>

#include "buildid.h"

static size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

size_t buildid_from_notes(const void *notes, size_t len, size_t align,
			  char *hex, size_t hexlen)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = notes;
	size_t off = 0;

	if (align != 8)
		align = 4;
	while (off + sizeof(Elf64_Nhdr) <= len) {
		Elf64_Nhdr nh;
		size_t name_off, desc_off, next, i;

		memcpy(&nh, p + off, sizeof(nh));
		name_off = off + sizeof(nh);
		if (nh.n_namesz > len - name_off)
			return 0;
		desc_off = round_up(name_off + nh.n_namesz, align);
		if (desc_off > len || nh.n_descsz > len - desc_off)
			return 0;
		next = round_up(desc_off + nh.n_descsz, align);
		if (nh.n_type == NT_GNU_BUILD_ID &&
		    nh.n_namesz == sizeof(ELF_NOTE_GNU) &&
		    !memcmp(p + name_off, ELF_NOTE_GNU, sizeof(ELF_NOTE_GNU)) &&
		    nh.n_descsz) {
			if (2 * (size_t)nh.n_descsz + 1 > hexlen)
				return 0;
			for (i = 0; i < nh.n_descsz; i++) {
				hex[2 * i] = digits[p[desc_off + i] >> 4];
				hex[2 * i + 1] = digits[p[desc_off + i] & 15];
			}
			hex[2 * i] = '\0';
			return 2 * i;
		}
		if (next <= off)
			return 0;
		off = next;
	}
	return 0;
}
