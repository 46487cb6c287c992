/* Requests ring 3 makes of ring 0 (shared by user.S and C). Ring 3 runs with IOPL=0 and has
 * no software-interrupt gate: it executes `ud2` followed by one of these bytes, and the #UD
 * handler (ureq_entry in user.S) carries the request out in ring 0, interrupts off, and
 * resumes ring 3 after the byte. Registers as the in/out instructions have them:
 *   UREQ_IN{B,W,L}        %dx port                              -> %al/%ax/%eax
 *   UREQ_OUT{B,W,L}       %dx port, %al/%ax/%eax value
 *   UREQ_SERIAL_WRITE     %rdi bytes, %rsi count: serial_send() on COM1; clobbers what a C
 *                         call may (but %rcx)
 *   UREQ_CFG_INL          %edx PCI configuration address         -> %eax; %edx clobbered
 *   UREQ_CFG_OUT{B,W,L}   %edx address, %al/%ax/%eax value;        %edx clobbered
 *   UREQ_RETURN           %rdi the value run_user returns (does not come back)
 * A configuration address is mechanism #1's (0x80000000 | bus << 16 | slot << 11 | fn << 8 |
 * offset) with the offset's low two bits kept: ring 0 writes it to 0xCF8 with those bits
 * clear, then accesses 0xCFC plus those bits. */
#pragma once

#define UREQ_RETURN	  0
#define UREQ_INB	  1
#define UREQ_INW	  2
#define UREQ_INL	  3
#define UREQ_OUTB	  4
#define UREQ_OUTW	  5
#define UREQ_OUTL	  6
#define UREQ_SERIAL_WRITE 7
#define UREQ_CFG_INL	  8
#define UREQ_CFG_OUTB	  9
#define UREQ_CFG_OUTW	  10
#define UREQ_CFG_OUTL	  11
#define UREQ_COUNT	  12
