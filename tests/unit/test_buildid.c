/*
 * tests/unit/test_buildid.c - cmocka tests of common/buildid.c, the GNU
 * build-id read from an object's notes in memory.
 *
 * Why this exists: the agent decides with it whether the symbols it was
 * handed (or the file it reads) belong to the code the process runs.  A
 * parser that read past its area would crash the target; one that took
 * another note for the build-id would let a patch be resolved against the
 * wrong file.  Made-up note areas check the layout rules (4- and 8-byte
 * alignment, other notes first, names other than "GNU", lengths that run
 * past the area, a buffer too small); then the real thing: this test
 * program's own notes, found with dl_iterate_phdr as the agent finds
 * them, give the build-id that libelf reads from its file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <elf.h>
#include <link.h>
#include <cmocka.h>

#include "buildid.h"
#include "elfsym.h"

/* Appends one note to buf at *off, padded to align. */
static void note(uint8_t *buf, size_t *off, size_t align, uint32_t type,
		 const char *name, size_t namesz, const void *desc,
		 size_t descsz)
{
	Elf64_Nhdr nh = { (Elf64_Word)namesz, (Elf64_Word)descsz, type };

	memcpy(buf + *off, &nh, sizeof(nh));
	*off += sizeof(nh);
	memcpy(buf + *off, name, namesz);
	*off = (*off + namesz + align - 1) & ~(align - 1);
	memcpy(buf + *off, desc, descsz);
	*off = (*off + descsz + align - 1) & ~(align - 1);
}

static const uint8_t id20[20] = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0xff,
	0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x7f, 0x80,
};
#define ID20_HEX "0123456789abcdef00ff1032547698badcfe7f80"

static void test_single_note(void **state)
{
	uint8_t buf[256] = { 0 };
	char hex[80];
	size_t off = 0;

	(void)state;
	note(buf, &off, 4, NT_GNU_BUILD_ID, "GNU", 4, id20, sizeof(id20));
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, sizeof(hex)), 40);
	assert_string_equal(hex, ID20_HEX);
}

static void test_after_other_notes_align8(void **state)
{
	static const uint32_t abi[4] = { 0, 3, 2, 0 };
	static const uint8_t prop[16] = { 1, 2, 3 };
	uint8_t buf[256] = { 0 };
	char hex[80];
	size_t off = 0;

	(void)state;
	note(buf, &off, 8, NT_GNU_ABI_TAG, "GNU", 4, abi, sizeof(abi));
	note(buf, &off, 8, NT_GNU_PROPERTY_TYPE_0, "GNU", 4, prop,
	     sizeof(prop));
	/* A build-id type under another name is not one. */
	note(buf, &off, 8, NT_GNU_BUILD_ID, "XYZW", 5, "\x11\x22", 2);
	note(buf, &off, 8, NT_GNU_BUILD_ID, "GNU", 4, id20, 16);
	assert_int_equal(buildid_from_notes(buf, off, 8, hex, sizeof(hex)), 32);
	assert_string_equal(hex, "0123456789abcdef00ff1032547698ba");
}

static void test_no_build_id(void **state)
{
	static const uint32_t abi[4] = { 0, 3, 2, 0 };
	uint8_t buf[256] = { 0 };
	char hex[80] = "untouched";
	size_t off = 0;

	(void)state;
	note(buf, &off, 4, NT_GNU_ABI_TAG, "GNU", 4, abi, sizeof(abi));
	/* An empty description is no build-id either. */
	note(buf, &off, 4, NT_GNU_BUILD_ID, "GNU", 4, id20, 0);
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, sizeof(hex)), 0);
	assert_int_equal(buildid_from_notes(buf, 0, 4, hex, sizeof(hex)), 0);
	assert_int_equal(buildid_from_notes(buf, 5, 4, hex, sizeof(hex)), 0);
}

static void test_lengths_past_the_area(void **state)
{
	uint8_t buf[256] = { 0 };
	char hex[80];
	size_t off = 0;

	(void)state;
	note(buf, &off, 4, NT_GNU_BUILD_ID, "GNU", 4, id20, sizeof(id20));
	/* The description cut short by the area's end. */
	assert_int_equal(buildid_from_notes(buf, off - 1, 4, hex, sizeof(hex)),
			 0);
	/* A name or description size as large as it can be. */
	((Elf64_Nhdr *)buf)->n_namesz = 0xffffffffu;
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, sizeof(hex)), 0);
	((Elf64_Nhdr *)buf)->n_namesz = 4;
	((Elf64_Nhdr *)buf)->n_descsz = 0xfffffff0u;
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, sizeof(hex)), 0);
}

static void test_buffer_too_small(void **state)
{
	uint8_t buf[256] = { 0 };
	char hex[41];
	size_t off = 0;

	(void)state;
	note(buf, &off, 4, NT_GNU_BUILD_ID, "GNU", 4, id20, sizeof(id20));
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, 40), 0);
	assert_int_equal(buildid_from_notes(buf, off, 4, hex, 41), 40);
	assert_string_equal(hex, ID20_HEX);
}

static int own_notes(struct dl_phdr_info *info, size_t size, void *arg)
{
	char *hex = arg;
	size_t i;

	(void)size;
	/* The first object is this program. */
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_NOTE &&
		    buildid_from_notes((const void *)(info->dlpi_addr +
						      ph->p_vaddr),
				       ph->p_memsz, ph->p_align, hex, 80))
			break;
	}
	return 1;
}

static void test_own_mapping_matches_file(void **state)
{
	struct elfsym_file *f;
	char hex[80] = "", err[256];

	(void)state;
	dl_iterate_phdr(own_notes, hex);
	assert_int_equal(elfsym_open("/proc/self/exe", &f, err, sizeof(err)), 0);
	assert_true(strlen(elfsym_build_id(f)) >= 32);
	assert_string_equal(hex, elfsym_build_id(f));
	elfsym_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_note),
		cmocka_unit_test(test_after_other_notes_align8),
		cmocka_unit_test(test_no_build_id),
		cmocka_unit_test(test_lengths_past_the_area),
		cmocka_unit_test(test_buffer_too_small),
		cmocka_unit_test(test_own_mapping_matches_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
