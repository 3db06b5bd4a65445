/*
 * agent/libs.h - the two libraries the agent calls (libelf, to read symbol
 * tables; Zydis, to decode instructions), reached through
 * librelive-agent-libs.so, which the agent loads only when a request needs
 * them (agent/libs.c says why and when).
 *
 * struct relive_libs is the table that library exports: one pointer per
 * function of libelf and Zydis the agent calls, typed from their own
 * headers, so a call through it is checked like a direct one.
 */
#ifndef RELIVE_AGENT_LIBS_H
#define RELIVE_AGENT_LIBS_H

#include <stdbool.h>

#include <gelf.h>
#include <libelf.h>
#include <Zydis/Zydis.h>

#define RELIVE_LIBS_FILE "librelive-agent-libs.so"
#define RELIVE_LIBS_SYMBOL "relive_agent_libs"

#define RELIVE_LIBS_FUNCS(X) \
	X(elf_begin) X(elf_end) X(elf_errmsg) X(elf_getdata) \
	X(elf_getdata_rawchunk) X(elf_getphdrnum) X(elf_getscn) X(elf_kind) \
	X(elf_ndxscn) X(elf_nextscn) X(elf_strptr) X(elf_version) \
	X(gelf_getclass) X(gelf_getdyn) X(gelf_getehdr) X(gelf_getnote) \
	X(gelf_getphdr) X(gelf_getshdr) X(gelf_getsym) X(gelf_getverdaux) \
	X(gelf_getverdef) X(gelf_getversym) \
	X(ZydisCalcAbsoluteAddress) X(ZydisDecoderDecodeFull) \
	X(ZydisDecoderDecodeInstruction) X(ZydisDecoderDecodeOperands) \
	X(ZydisDecoderInit) X(ZydisMnemonicGetString) X(elf_cntl)

struct relive_libs {
	unsigned size; /* sizeof(struct relive_libs) of the library's build */
#define RELIVE_LIBS_MEMBER(f) __typeof__(f) *f;
	RELIVE_LIBS_FUNCS(RELIVE_LIBS_MEMBER)
#undef RELIVE_LIBS_MEMBER
};

/*
 * Takes a hold on librelive-agent-libs.so (and with it libelf and Zydis),
 * loading it from the agent's own folder if no one holds it; *loaded says
 * whether this call loaded it.  Calls the dynamic loader: never with
 * agent_lock held, never from the loader's notification.  Returns true
 * when the libraries are there; false, with no hold taken and a message
 * in libs_error(), when they cannot be loaded.
 */
bool libs_get(bool *loaded);

/* Drops a hold of libs_get(); the last one unloads the libraries.  The
 * same rules as libs_get(). */
void libs_put(void);

/* Whether the libraries are loaded (any thread, any context). */
bool libs_ready(void);

/* Why the last libs_get() failed, or why the libraries are missing. */
const char *libs_error(void);

/*
 * A request needed the libraries where they cannot be loaded (under
 * agent_lock): the next request that loads a patch loads them first.
 */
void libs_want(void);
bool libs_wanted(void);

#endif
