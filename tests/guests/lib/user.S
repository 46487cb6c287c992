/* run_user(fn, arg): calls fn(arg) in ring 3 with IOPL=3 and IF=1 on the user stack; fn's
 * return value comes back through `int $0x80` (a DPL-3 gate to user_return), which drops the
 * ring-0 interrupt frame and resumes run_user's caller with the saved callee-saved registers.
 * BSP only: the TSS (RSP0) and the saved stack pointer are single. */

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
	pushq $0x3202			/* IOPL=3, IF=1 */
	pushq $SEL_UCODE3
	pushq $user_entry
	iretq

user_entry:
	movq %rdi, %rax
	movq %rsi, %rdi
	call *%rax
	movq %rax, %rdi
	int $0x80
	ud2

	.globl user_return
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

	.data
	.align 8
user_saved_rsp:
	.quad 0

	.section .note.GNU-stack, "", @progbits
