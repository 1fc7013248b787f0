// deny_io_uring: runs a command with the io_uring system calls refused, as
// a container runtime's default seccomp profile (containerd 2.0+, Docker
// 25+) or kernel.io_uring_disabled refuses them:
//
//   deny_io_uring EPERM|ENOSYS|KILL COMMAND [ARGS...]
//
// EPERM and ENOSYS: io_uring_setup, io_uring_enter and io_uring_register
// fail with that errno. KILL: the process is killed (SIGSYS) on its first
// io_uring call, which proves a command never makes one. Installs a seccomp
// filter (PR_SET_NO_NEW_PRIVS, then SECCOMP_SET_MODE_FILTER) and execs the
// command, which inherits the filter: its pid is the command's.

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "deny_io_uring: unknown architecture"
#endif

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: deny_io_uring EPERM|ENOSYS|KILL COMMAND [ARGS...]\n");
    return 2;
  }
  unsigned action;
  if (strcmp(argv[1], "EPERM") == 0) {
    action = SECCOMP_RET_ERRNO | EPERM;
  } else if (strcmp(argv[1], "ENOSYS") == 0) {
    action = SECCOMP_RET_ERRNO | ENOSYS;
  } else if (strcmp(argv[1], "KILL") == 0) {
    action = SECCOMP_RET_KILL_PROCESS;
  } else {
    fprintf(stderr, "deny_io_uring: unknown action %s\n", argv[1]);
    return 2;
  }
  struct sock_filter filter[] = {
      // Another architecture's calls (a 32-bit ABI) have other numbers:
      // refuse them all rather than let io_uring through.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, action),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("deny_io_uring: PR_SET_NO_NEW_PRIVS");
    return 1;
  }
  if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    perror("deny_io_uring: seccomp");
    return 1;
  }
  execvp(argv[2], argv + 2);
  perror("deny_io_uring: exec");
  return 127;
}
