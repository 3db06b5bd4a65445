/*
 * agent/libs.c - libelf and Zydis, loaded into a process only when a
 * request needs them.
 *
 * The agent reads symbol tables (libelf, through common/elfsym.c) and
 * decodes instructions (Zydis, agent/arch/x86_64/insn.c), but most
 * requests do neither: relive has read the tables and decoded the entries
 * already, once per command, and hands the results over with the request
 * (relive/resolution.c, relive/sites.c).  Loading libelf, libz and Zydis
 * was still half of the agent's own dlopen, in every process relive
 * injects (docs/performance.md, "Many processes", round 25).  So the agent
 * is not linked with them: librelive-agent-libs.so is (agent/libs_table.c),
 * and this file loads it from the agent's own folder when a request is
 * about to need it; the functions below, named like libelf's and Zydis's,
 * call through its table.
 *
 * When: only where the agent may call the dynamic loader, that is outside
 * agent_lock and outside the loader's notification (agent/objects.c, lock
 * order).  A request that loads a patch decides first, from what relive
 * resolved and what the process has mapped, whether it could need the
 * libraries, before it takes agent_lock (core.c, needs_libs), and if
 * so the patch holds them (libs_get) for as long as it is listed.  When
 * the last holder goes (a request refused after loading them, a patch
 * aborted or removed), they are unloaded again (libs_put): a process
 * left without patches maps what it mapped before, and a refused request
 * leaves no library behind.  Should a call arrive while they are not
 * loaded (a decision proved wrong), it fails as a missing file would,
 * with a message naming this library, and the next request loads it
 * (libs_want): nothing in the process is changed by the failure.
 *
 * Unloading is safe against the one caller outside a request, the
 * loader's notification (objects.c, reading an object loaded later): it
 * runs with the loader's lock held, and dlclose() takes that lock, after
 * the table is cleared.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "libs.h"

static const struct relive_libs *libs_table;
static void *libs_handle;
static unsigned libs_holds;	/* under libs_lock */
static pthread_mutex_t libs_lock = PTHREAD_MUTEX_INITIALIZER;
static char libs_msg[512] = "relive's ELF reader and instruction decoder ("
			    RELIVE_LIBS_FILE ") are not loaded in this "
			    "process";
static bool libs_asked;

static const struct relive_libs *table(void)
{
	return __atomic_load_n(&libs_table, __ATOMIC_ACQUIRE);
}

bool libs_ready(void)
{
	return table() != NULL;
}

const char *libs_error(void)
{
	return libs_msg;
}

void libs_want(void)
{
	__atomic_store_n(&libs_asked, true, __ATOMIC_RELAXED);
}

bool libs_wanted(void)
{
	return __atomic_load_n(&libs_asked, __ATOMIC_RELAXED);
}

/* The path of librelive-agent-libs.so: beside the agent's own file. */
static bool libs_path(char *path, size_t len)
{
	Dl_info info;
	const char *slash;
	int n;

	if (!dladdr((void *)libs_path, &info) || !info.dli_fname ||
	    !(slash = strrchr(info.dli_fname, '/')))
		return false;
	n = snprintf(path, len, "%.*s/%s", (int)(slash - info.dli_fname),
		     info.dli_fname, RELIVE_LIBS_FILE);
	return n > 0 && (size_t)n < len;
}

/* Loads the library if it is not.  Under libs_lock. */
static bool load_locked(void)
{
	const struct relive_libs *t;
	char path[4096];
	void *h;

	if (libs_ready())
		return true;
	if (!libs_path(path, sizeof(path))) {
		snprintf(libs_msg, sizeof(libs_msg), "cannot tell where the "
			 "agent's file is, to load %s beside it",
			 RELIVE_LIBS_FILE);
		return false;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();

		snprintf(libs_msg, sizeof(libs_msg), "cannot load %s (it "
			 "belongs beside librelive-agent.so; reinstall "
			 "relive): %s", path, e ? e : "dlopen failed");
		return false;
	}
	t = dlsym(h, RELIVE_LIBS_SYMBOL);
	if (!t || t->size != sizeof(*t)) {
		snprintf(libs_msg, sizeof(libs_msg), "%s is not the one built "
			 "with this agent; reinstall relive", path);
		dlclose(h);
		return false;
	}
	t->elf_version(EV_CURRENT);
	libs_handle = h;
	__atomic_store_n(&libs_table, t, __ATOMIC_RELEASE);
	__atomic_store_n(&libs_asked, false, __ATOMIC_RELAXED);
	return true;
}

bool libs_get(bool *loaded)
{
	bool ok;

	pthread_mutex_lock(&libs_lock);
	*loaded = !libs_ready();
	ok = load_locked();
	if (ok)
		libs_holds++;
	else
		*loaded = false;
	pthread_mutex_unlock(&libs_lock);
	return ok;
}

void libs_put(void)
{
	pthread_mutex_lock(&libs_lock);
	if (libs_holds && !--libs_holds && libs_handle) {
		/* Callers see "not loaded" from here on; one in the loader's
		 * notification holds the loader's lock, which dlclose()
		 * waits for. */
		__atomic_store_n(&libs_table, NULL, __ATOMIC_RELEASE);
		dlclose(libs_handle);
		libs_handle = NULL;
		snprintf(libs_msg, sizeof(libs_msg), "relive's ELF reader and "
			 "instruction decoder (%s) are not loaded in this "
			 "process", RELIVE_LIBS_FILE);
	}
	pthread_mutex_unlock(&libs_lock);
}

/*
 * The functions the agent calls, by their own names.  Without the table,
 * each fails the way its library reports a failure: the entry points
 * (elf_version, elf_begin, ZydisDecoderInit and the decoders) refuse, and
 * the others can only be reached with what an entry point returned.
 */
#define CALL(f, fail, ...) \
	const struct relive_libs *t = table(); \
	if (!t) { \
		libs_want(); \
		return fail; \
	} \
	return t->f(__VA_ARGS__)

unsigned int elf_version(unsigned int v)
{
	const struct relive_libs *t = table();

	/* Until loaded: nothing to set (libs_get() sets EV_CURRENT), and
	 * a reader asking now is told the library is missing. */
	if (!t) {
		libs_want();
		return EV_NONE;
	}
	return t->elf_version(v);
}

Elf *elf_begin(int fd, Elf_Cmd cmd, Elf *ref)
{
	CALL(elf_begin, NULL, fd, cmd, ref);
}

int elf_end(Elf *elf)
{
	CALL(elf_end, 0, elf);
}

int elf_cntl(Elf *elf, Elf_Cmd cmd)
{
	CALL(elf_cntl, -1, elf, cmd);
}

const char *elf_errmsg(int error)
{
	const struct relive_libs *t = table();

	return t ? t->elf_errmsg(error) : libs_msg;
}

Elf_Data *elf_getdata(Elf_Scn *scn, Elf_Data *data)
{
	CALL(elf_getdata, NULL, scn, data);
}

Elf_Data *elf_getdata_rawchunk(Elf *elf, int64_t offset, size_t size,
			       Elf_Type type)
{
	CALL(elf_getdata_rawchunk, NULL, elf, offset, size, type);
}

int elf_getphdrnum(Elf *elf, size_t *dst)
{
	CALL(elf_getphdrnum, -1, elf, dst);
}

Elf_Scn *elf_getscn(Elf *elf, size_t index)
{
	CALL(elf_getscn, NULL, elf, index);
}

Elf_Kind elf_kind(Elf *elf)
{
	CALL(elf_kind, ELF_K_NONE, elf);
}

size_t elf_ndxscn(Elf_Scn *scn)
{
	CALL(elf_ndxscn, SHN_UNDEF, scn);
}

Elf_Scn *elf_nextscn(Elf *elf, Elf_Scn *scn)
{
	CALL(elf_nextscn, NULL, elf, scn);
}

char *elf_strptr(Elf *elf, size_t index, size_t offset)
{
	CALL(elf_strptr, NULL, elf, index, offset);
}

int gelf_getclass(Elf *elf)
{
	CALL(gelf_getclass, ELFCLASSNONE, elf);
}

GElf_Dyn *gelf_getdyn(Elf_Data *data, int ndx, GElf_Dyn *dst)
{
	CALL(gelf_getdyn, NULL, data, ndx, dst);
}

GElf_Ehdr *gelf_getehdr(Elf *elf, GElf_Ehdr *dest)
{
	CALL(gelf_getehdr, NULL, elf, dest);
}

size_t gelf_getnote(Elf_Data *data, size_t offset, GElf_Nhdr *result,
		    size_t *name_offset, size_t *desc_offset)
{
	CALL(gelf_getnote, 0, data, offset, result, name_offset, desc_offset);
}

GElf_Phdr *gelf_getphdr(Elf *elf, int ndx, GElf_Phdr *dst)
{
	CALL(gelf_getphdr, NULL, elf, ndx, dst);
}

GElf_Shdr *gelf_getshdr(Elf_Scn *scn, GElf_Shdr *dst)
{
	CALL(gelf_getshdr, NULL, scn, dst);
}

GElf_Sym *gelf_getsym(Elf_Data *data, int ndx, GElf_Sym *dst)
{
	CALL(gelf_getsym, NULL, data, ndx, dst);
}

GElf_Verdaux *gelf_getverdaux(Elf_Data *data, int offset, GElf_Verdaux *dst)
{
	CALL(gelf_getverdaux, NULL, data, offset, dst);
}

GElf_Verdef *gelf_getverdef(Elf_Data *data, int offset, GElf_Verdef *dst)
{
	CALL(gelf_getverdef, NULL, data, offset, dst);
}

GElf_Versym *gelf_getversym(Elf_Data *data, int ndx, GElf_Versym *dst)
{
	CALL(gelf_getversym, NULL, data, ndx, dst);
}

ZyanStatus ZydisDecoderInit(ZydisDecoder *decoder,
			    ZydisMachineMode machine_mode,
			    ZydisStackWidth stack_width)
{
	CALL(ZydisDecoderInit, ZYAN_STATUS_FAILED, decoder, machine_mode,
	     stack_width);
}

ZyanStatus ZydisDecoderDecodeFull(const ZydisDecoder *decoder,
				  const void *buffer, ZyanUSize length,
				  ZydisDecodedInstruction *instruction,
				  ZydisDecodedOperand
					  operands[ZYDIS_MAX_OPERAND_COUNT])
{
	CALL(ZydisDecoderDecodeFull, ZYAN_STATUS_FAILED, decoder, buffer,
	     length, instruction, operands);
}

ZyanStatus ZydisDecoderDecodeInstruction(const ZydisDecoder *decoder,
					 ZydisDecoderContext *context,
					 const void *buffer, ZyanUSize length,
					 ZydisDecodedInstruction *instruction)
{
	CALL(ZydisDecoderDecodeInstruction, ZYAN_STATUS_FAILED, decoder,
	     context, buffer, length, instruction);
}

ZyanStatus ZydisDecoderDecodeOperands(const ZydisDecoder *decoder,
				      const ZydisDecoderContext *context,
				      const ZydisDecodedInstruction *instruction,
				      ZydisDecodedOperand *operands,
				      ZyanU8 operand_count)
{
	CALL(ZydisDecoderDecodeOperands, ZYAN_STATUS_FAILED, decoder, context,
	     instruction, operands, operand_count);
}

ZyanStatus ZydisCalcAbsoluteAddress(const ZydisDecodedInstruction *instruction,
				    const ZydisDecodedOperand *operand,
				    ZyanU64 runtime_address,
				    ZyanU64 *result_address)
{
	CALL(ZydisCalcAbsoluteAddress, ZYAN_STATUS_FAILED, instruction,
	     operand, runtime_address, result_address);
}

const char *ZydisMnemonicGetString(ZydisMnemonic mnemonic)
{
	const struct relive_libs *t = table();

	return t ? t->ZydisMnemonicGetString(mnemonic) : "(not decoded)";
}
