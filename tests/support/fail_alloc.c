// A test-only LD_PRELOAD library: allocations of more than
// COWBLK_TEST_FAIL_ALLOC_ABOVE bytes fail (NULL, errno ENOMEM), as they
// would under a memory limit; smaller ones are served as usual. Without
// the variable (or with 0) nothing fails. It replaces malloc, aligned_alloc,
// posix_memalign, memalign, calloc and realloc (operator new calls malloc),
// so a server started under it meets an allocation failure exactly where a
// request asks for a large buffer, and nowhere else: no hook in production
// code. Every allocation is served by glibc's own entry points
// (__libc_malloc and the like), so nothing here allocates.

#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);

static size_t FailAbove(void) {
  static size_t limit = (size_t)-1;  // -1: not read yet
  if (limit == (size_t)-1) {
    const char* v = getenv("COWBLK_TEST_FAIL_ALLOC_ABOVE");
    limit = v != NULL ? (size_t)strtoull(v, NULL, 10) : 0;
  }
  return limit;
}

static int Fails(size_t size) {
  const size_t limit = FailAbove();
  if (limit == 0 || size <= limit) return 0;
  errno = ENOMEM;
  return 1;
}

void* malloc(size_t size) { return Fails(size) ? NULL : __libc_malloc(size); }

void* calloc(size_t n, size_t size) {
  if (size != 0 && n > (size_t)-1 / size) return __libc_calloc(n, size);  // overflow: glibc says
  return Fails(n * size) ? NULL : __libc_calloc(n, size);
}

void* realloc(void* p, size_t size) { return Fails(size) ? NULL : __libc_realloc(p, size); }

void* memalign(size_t alignment, size_t size) {
  return Fails(size) ? NULL : __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  return Fails(size) ? NULL : __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  if (Fails(size)) return ENOMEM;
  void* p = __libc_memalign(alignment, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}
