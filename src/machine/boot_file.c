#include "machine/boot_file.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int boot_file_map(const char *path, struct boot_file *f)
{
	memset(f, 0, sizeof(*f));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kite_error_errno(errno, "%s", path);
	if (fstat(fd, &f->st) < 0) {
		int e = errno;
		close(fd);
		return kite_error_errno(e, "%s", path);
	}
	if (!S_ISREG(f->st.st_mode)) {
		close(fd);
		return kite_error("%s: not a regular file", path);
	}
	f->len = (size_t)f->st.st_size;
	if (f->len) {
		void *p = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			return kite_error_errno(e, "%s: cannot map", path);
		}
		f->data = p;
	}
	if (close(fd) < 0)
		kite_warn("%s: close: %s", path, strerror(errno));
	return 0;
}

void boot_file_unmap(struct boot_file *f)
{
	if (f->data)
		munmap((void *)f->data, f->len);
	memset(f, 0, sizeof(*f));
}
