/* Ring 3 and what it asks of ring 0.
 *
 * run_user(fn, arg) calls fn(arg) in ring 3 with IOPL=0 and IF=1 on the user stack. Ring 3
 * can do no port I/O and has no software-interrupt gate: KVM-PVM hosts honour neither IOPL
 * nor a DPL-3 gate for guest ring 3, but they do deliver its exceptions. So ring 3 asks with
 * `ud2` followed by a request byte (ureq.h); the #UD comes to ureq_entry (vector 6), which
 * carries the request out and returns to the instruction after the byte. A PVM host
 * emulates ring 0 at ~1 µs an instruction, hence a path of a dozen instructions in assembly
 * rather than the C dispatcher. A #UD that is no request (ring 0, other bytes) goes the way
 * of every exception (isr.S). fn's return value comes back through UREQ_RETURN, which drops
 * the ring-0 frame and resumes run_user's caller with the saved callee-saved registers.
 * BSP only: the TSS (RSP0) and the saved stack pointer are single. */
#include "ureq.h"

#define SEL_DATA   0x10
#define SEL_UDATA3 0x23
#define SEL_UCODE3 0x2b

	.text
	.code64
	.globl run_user
run_user:
	pushq %rbx
	pushq %rbp
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, user_saved_rsp(%rip)
	pushq $SEL_UDATA3
	pushq $user_stack_top
	pushq $0x202			/* IOPL=0, IF=1 */
	pushq $SEL_UCODE3
	pushq $user_entry
	iretq

user_entry:
	movq %rdi, %rax
	movq %rsi, %rdi
	call *%rax
	movq %rax, %rdi
	ud2
	.byte UREQ_RETURN

user_return:
	movq user_saved_rsp(%rip), %rsp
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movq %rdi, %rax
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbp
	popq %rbx
	ret

/* The #UD gate. On the stack: RIP, CS, RFLAGS, RSP, SS of the code that raised it. */
	.globl ureq_entry
ureq_entry:
	testb $3, 8(%rsp)		/* from ring 3? */
	jz not_a_request
	pushq %rcx
	movq 8(%rsp), %rcx		/* the ud2 */
	cmpw $0x0b0f, (%rcx)
	jne 1f
	movzbl 2(%rcx), %ecx
	cmpl $UREQ_COUNT, %ecx
	jae 1f
	jmp *ureq_table(, %rcx, 8)
1:	popq %rcx
not_a_request:
	jmp isr_stubs + 16 * 6

ureq_done:
	popq %rcx
	addq $3, (%rsp)			/* past ud2 and the request byte */
	iretq

ureq_return:
	jmp user_return

ureq_inb:
	inb %dx, %al
	jmp ureq_done
ureq_inw:
	inw %dx, %ax
	jmp ureq_done
ureq_inl:
	inl %dx, %eax
	jmp ureq_done
ureq_outb:
	outb %al, %dx
	jmp ureq_done
ureq_outw:
	outw %ax, %dx
	jmp ureq_done
ureq_outl:
	outl %eax, %dx
	jmp ureq_done

/* serial_send(bytes, count) is C: the stack is 16-byte aligned here (five words from the CPU,
 * then %rcx), and ring 3 declared what a call may clobber. */
ureq_serial_write:
	call serial_send
	jmp ureq_done

/* %edx: a configuration address. Selects its dword through 0xCF8 and leaves the data port in
 * %edx: 0xCFC plus the address's low two bits. Keeps %eax; %ecx is scratch here. */
cfg_select:
	pushq %rax
	movl %edx, %eax
	andl $0xfffffffc, %eax
	movl %edx, %ecx
	movl $0xcf8, %edx
	outl %eax, %dx
	andl $3, %ecx
	leal 0xcfc(%rcx), %edx
	popq %rax
	ret

ureq_cfg_inl:
	call cfg_select
	jmp ureq_inl
ureq_cfg_outb:
	call cfg_select
	jmp ureq_outb
ureq_cfg_outw:
	call cfg_select
	jmp ureq_outw
ureq_cfg_outl:
	call cfg_select
	jmp ureq_outl

	.section .rodata
	.align 8
ureq_table:
	.quad ureq_return
	.quad ureq_inb, ureq_inw, ureq_inl, ureq_outb, ureq_outw, ureq_outl
	.quad ureq_serial_write
	.quad ureq_cfg_inl, ureq_cfg_outb, ureq_cfg_outw, ureq_cfg_outl
	.if . - ureq_table != UREQ_COUNT * 8
	.error "ureq_table does not match ureq.h"
	.endif

	.data
	.align 8
user_saved_rsp:
	.quad 0

	.section .note.GNU-stack, "", @progbits
