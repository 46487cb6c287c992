/* A small AML writer (ACPI 6.x chapter 20): just the objects kite's DSDT needs (names,
 * integers, packages, buffers, devices, scopes, resource templates). A block (package, buffer,
 * device, scope) is built in its own `struct aml` and then wrapped into its parent, so every
 * PkgLength is encoded in its minimal form. Allocation failure sticks in `failed`. */
#ifndef KITE_MACHINE_ACPI_AML_H
#define KITE_MACHINE_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *p;
	size_t len, cap;
	bool failed;
};

void aml_free(struct aml *a);
void aml_bytes(struct aml *a, const void *b, size_t n);
void aml_byte(struct aml *a, uint8_t b);
/* An integer in the shortest encoding (Zero, One, Byte/Word/DWord/QWordConst). */
void aml_int(struct aml *a, uint64_t v);
/* A name path such as "\\_SB_", "PCI0" or "_S5_" (segments padded with '_' to 4 chars). */
void aml_name(struct aml *a, const char *path);
/* EISAID("PNP0A03") as its 32-bit compressed form. */
uint32_t aml_eisaid(const char *id);

/* Name (path, <value written by the caller next>) */
void aml_name_decl(struct aml *a, const char *path);
/* Appends `body`, wrapped as Package (n) { body } / Buffer () { body } / Device (name) { body } /
 * Scope (name) { body }, then frees `body`. */
void aml_package(struct aml *a, uint8_t nelems, struct aml *body);
void aml_buffer(struct aml *a, struct aml *body);
void aml_device(struct aml *a, const char *name, struct aml *body);
void aml_scope(struct aml *a, const char *name, struct aml *body);

/* Resource descriptors for a ResourceTemplate () buffer; finish with aml_res_end(). */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_io(struct aml *a, uint16_t port, uint8_t len);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max);
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len);
void aml_res_end(struct aml *a);

#endif
