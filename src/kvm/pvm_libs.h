/* Unicorn and Capstone for the PVM fallback, loaded on first use (see pvm_libs.c). */
#ifndef KITE_KVM_PVM_LIBS_H
#define KITE_KVM_PVM_LIBS_H

/* Loads both libraries once; -1 with a kite_error naming what is missing. */
int pvm_libs_load(void);

#endif
