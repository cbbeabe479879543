/* sanitize.h - CS_ASAN: 1 in a build with AddressSanitizer (gcc defines
 * __SANITIZE_ADDRESS__, clang answers __has_feature), else 0. For the few
 * places that must know: its allocator has no mallopt, and memory figures
 * include its redzones and quarantine. */
#ifndef CS_SANITIZE_H
#define CS_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define CS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CS_ASAN 1
#endif
#endif
#ifndef CS_ASAN
#define CS_ASAN 0
#endif

#endif
