/*
 * cudart_emu: a host-memory emulation of the part of the CUDA runtime API
 * that safeweights-load calls, for testing its CUDA pipeline on machines
 * without a GPU. It is built by tests/cuda_emulated.rs and loaded through
 * `Cuda::open`, exactly as the real libcudart would be.
 *
 * It keeps the semantics the pipeline depends on, and checks them:
 *  - each stream runs its operations in order on its own thread, after a
 *    random delay (emu_reset's delay_us), so work really is asynchronous;
 *  - an event completes when the stream reaches the point it was recorded at;
 *  - cudaMemcpyAsync copies from the source when the stream runs it, not when
 *    it is called: a pinned buffer overwritten before that is caught (each
 *    copy hashes its source when queued and again when it runs);
 *  - device ranges are checked against cudaMalloc'd allocations of the
 *    stream's device; freeing memory that queued copies use, reading device
 *    memory that queued copies write, and two queued copies writing the same
 *    bytes are violations;
 *  - failures can be injected: the Nth cudaMemcpyAsync call fails, or the Nth
 *    copy fails asynchronously (a sticky error reported by later calls), or
 *    cudaMalloc runs out of device memory, or the Nth copy silently flips
 *    its first byte (to test checks after a load).
 * Configuration: emu_reset / emu_corrupt_copy from a test, or for another
 * process the environment: CUDART_EMU_DEVICES, CUDART_EMU_DELAY_US,
 * CUDART_EMU_CORRUPT_COPY.
 * Violations are counted and the last one described (emu_stats).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int cudaError_t;
enum {
    SUCCESS = 0,
    ERR_INVALID_VALUE = 1,
    ERR_MEMORY_ALLOCATION = 2,
    ERR_NO_DEVICE = 100,
    ERR_INVALID_DEVICE = 101,
    ERR_INVALID_RESOURCE_HANDLE = 400,
    ERR_LAUNCH_FAILURE = 719,
};

enum { KIND_DEVICE, KIND_PINNED };
enum { OP_COPY, OP_RECORD };

struct alloc {
    char *p;
    size_t len;
    int kind;
    int device;
    struct alloc *next;
};

struct event;

struct op {
    int kind;
    char *dst;
    const char *src;
    size_t len;
    uint64_t src_hash;
    struct event *event;
    uint64_t gen;
    struct op *next;
};

struct stream {
    int device;
    int destroyed;
    unsigned seed;
    struct op *head, *tail;
    pthread_cond_t cv;
    struct stream *next;
};

struct event {
    uint64_t recorded, done;
    int destroyed;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static struct alloc *allocs;
static struct stream *streams;
static __thread int current_device;

/* Configuration (emu_reset). */
static int device_count = 1;
static unsigned delay_us;
static long fail_async_call, fail_copy, corrupt_copy;
static size_t max_device_bytes;

/* State and counters (emu_stats). */
static cudaError_t sticky;
static long async_calls, copies_run, pageable_copies, violations, pinned_allocs;
static long live_device, live_pinned, live_streams, live_events;
static size_t device_bytes, bytes_copied;
static char last_violation[512];

typedef struct {
    long live_device, live_pinned, live_streams, live_events;
    long violations, async_calls, copies_run, pageable_copies;
    size_t bytes_copied, device_bytes;
    long pinned_allocs;
    char last_violation[512];
} emu_stats_t;

static void violation(const char *fmt, const void *a, size_t n) {
    violations++;
    snprintf(last_violation, sizeof last_violation, fmt, a, n);
}

static uint64_t hash(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static struct alloc *find(const void *p, size_t n, int kind) {
    uintptr_t at = (uintptr_t)p;
    for (struct alloc *a = allocs; a; a = a->next) {
        uintptr_t base = (uintptr_t)a->p;
        if (a->kind == kind && at >= base && at - base <= a->len && n <= a->len - (at - base)) return a;
    }
    return NULL;
}

static int overlaps(const char *a, size_t an, const char *b, size_t bn) {
    return an && bn && a < b + bn && b < a + an;
}

/* Whether a queued (not yet finished) copy reads or writes p..p+n. */
static int queued_use(const char *p, size_t n, int writes_only) {
    for (struct stream *s = streams; s; s = s->next)
        for (struct op *o = s->head; o; o = o->next)
            if (o->kind == OP_COPY &&
                (overlaps(o->dst, o->len, p, n) || (!writes_only && overlaps(o->src, o->len, p, n))))
                return 1;
    return 0;
}

static void *worker(void *arg) {
    struct stream *s = arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!s->head && !s->destroyed) pthread_cond_wait(&s->cv, &mu);
        if (!s->head) break;
        struct op *o = s->head;
        int fail = 0, corrupt = 0;
        if (o->kind == OP_COPY) {
            copies_run++;
            fail = copies_run == fail_copy;
            corrupt = copies_run == corrupt_copy;
        }
        unsigned d = delay_us ? (unsigned)rand_r(&s->seed) % (delay_us + 1) : 0;
        pthread_mutex_unlock(&mu);
        if (d) usleep(d);
        int changed = 0;
        if (o->kind == OP_COPY && !fail) {
            changed = hash(o->src, o->len) != o->src_hash;
            memcpy(o->dst, o->src, o->len);
            if (corrupt && o->len) o->dst[0] ^= 0x5A;
        }
        pthread_mutex_lock(&mu);
        if (changed) violation("pinned source %p (%zu bytes) overwritten before its queued copy ran", o->src, o->len);
        if (o->kind == OP_COPY && !fail) bytes_copied += o->len;
        if (fail && !sticky) sticky = ERR_LAUNCH_FAILURE;
        if (o->kind == OP_RECORD) {
            struct event *e = o->event;
            if (e->done < o->gen) e->done = o->gen;
            if (e->destroyed && e->done >= e->recorded) {
                free(e);
                live_events--;
            }
        }
        s->head = o->next;
        if (!s->head) s->tail = NULL;
        free(o);
        pthread_cond_broadcast(&progress);
    }
    struct stream **pp = &streams;
    while (*pp != s) pp = &(*pp)->next;
    *pp = s->next;
    live_streams--;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return NULL;
}

static void enqueue(struct stream *s, struct op *o) {
    o->next = NULL;
    if (s->tail) s->tail->next = o; else s->head = o;
    s->tail = o;
    pthread_cond_signal(&s->cv);
}

static int live_stream(struct stream *s) {
    for (struct stream *t = streams; t; t = t->next)
        if (t == s) return !s->destroyed;
    return 0;
}

/* ---- control, for the tests ---- */

__attribute__((constructor)) static void configure_from_environment(void) {
    const char *v;
    if ((v = getenv("CUDART_EMU_DEVICES"))) device_count = atoi(v);
    if ((v = getenv("CUDART_EMU_DELAY_US"))) delay_us = (unsigned)atoi(v);
    if ((v = getenv("CUDART_EMU_CORRUPT_COPY"))) corrupt_copy = atol(v);
}

void emu_corrupt_copy(long nth) {
    pthread_mutex_lock(&mu);
    corrupt_copy = nth;
    pthread_mutex_unlock(&mu);
}

void emu_reset(int devices, unsigned delay, long fail_async_nth, long fail_copy_nth, size_t max_bytes) {
    pthread_mutex_lock(&mu);
    device_count = devices;
    delay_us = delay;
    fail_async_call = fail_async_nth;
    fail_copy = fail_copy_nth;
    corrupt_copy = 0;
    max_device_bytes = max_bytes;
    sticky = SUCCESS;
    async_calls = copies_run = pageable_copies = violations = pinned_allocs = 0;
    bytes_copied = 0;
    last_violation[0] = 0;
    pthread_mutex_unlock(&mu);
}

/* Waits (up to about a second) for destroyed streams to drain, then reports. */
void emu_stats(emu_stats_t *out) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < 100 && live_streams > 0; i++) {
        pthread_mutex_unlock(&mu);
        usleep(10000);
        pthread_mutex_lock(&mu);
    }
    out->live_device = live_device;
    out->live_pinned = live_pinned;
    out->live_streams = live_streams;
    out->live_events = live_events;
    out->violations = violations;
    out->async_calls = async_calls;
    out->copies_run = copies_run;
    out->pageable_copies = pageable_copies;
    out->bytes_copied = bytes_copied;
    out->device_bytes = device_bytes;
    out->pinned_allocs = pinned_allocs;
    memcpy(out->last_violation, last_violation, sizeof last_violation);
    pthread_mutex_unlock(&mu);
}

/* ---- the CUDA runtime API subset ---- */

cudaError_t cudaGetDeviceCount(int *n) {
    pthread_mutex_lock(&mu);
    *n = device_count;
    pthread_mutex_unlock(&mu);
    return *n ? SUCCESS : ERR_NO_DEVICE;
}

cudaError_t cudaSetDevice(int d) {
    pthread_mutex_lock(&mu);
    int ok = d >= 0 && d < device_count;
    pthread_mutex_unlock(&mu);
    if (!ok) return ERR_INVALID_DEVICE;
    current_device = d;
    return SUCCESS;
}

static cudaError_t track(void **p, size_t n, int kind) {
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, n ? n : 1)) return ERR_MEMORY_ALLOCATION;
    struct alloc *a = malloc(sizeof *a);
    if (!a) {
        free(mem);
        return ERR_MEMORY_ALLOCATION;
    }
    *a = (struct alloc){mem, n, kind, current_device, allocs};
    allocs = a;
    *p = mem;
    return SUCCESS;
}

cudaError_t cudaMalloc(void **p, size_t n) {
    pthread_mutex_lock(&mu);
    cudaError_t r = sticky;
    if (!r && max_device_bytes && n > max_device_bytes - device_bytes) r = ERR_MEMORY_ALLOCATION;
    if (!r) r = track(p, n, KIND_DEVICE);
    if (!r) {
        device_bytes += n;
        live_device++;
    }
    pthread_mutex_unlock(&mu);
    return r;
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags) {
    (void)flags;
    pthread_mutex_lock(&mu);
    cudaError_t r = track(p, n, KIND_PINNED);
    if (!r) {
        live_pinned++;
        pinned_allocs++;
    }
    pthread_mutex_unlock(&mu);
    return r;
}

static cudaError_t release(void *p, int kind) {
    if (!p) return SUCCESS;
    pthread_mutex_lock(&mu);
    struct alloc **pp = &allocs;
    while (*pp && !((*pp)->p == p && (*pp)->kind == kind)) pp = &(*pp)->next;
    if (!*pp) {
        violation("free of %p (%zu): not an allocation of this kind", p, 0);
        pthread_mutex_unlock(&mu);
        return ERR_INVALID_VALUE;
    }
    struct alloc *a = *pp;
    /* Kept (leaked) so the queued copies do not crash the test process. */
    int in_use = queued_use(a->p, a->len, 0);
    if (in_use) violation("free of %p (%zu bytes) while queued copies still use it", a->p, a->len);
    *pp = a->next;
    if (kind == KIND_DEVICE) {
        device_bytes -= a->len;
        live_device--;
    } else {
        live_pinned--;
    }
    pthread_mutex_unlock(&mu);
    if (!in_use) free(a->p);
    free(a);
    return SUCCESS;
}

cudaError_t cudaFree(void *p) { return release(p, KIND_DEVICE); }
cudaError_t cudaFreeHost(void *p) { return release(p, KIND_PINNED); }

cudaError_t cudaStreamCreateWithFlags(void **out, unsigned flags) {
    (void)flags;
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return ERR_MEMORY_ALLOCATION;
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_lock(&mu);
    s->device = current_device;
    s->seed = (unsigned)(uintptr_t)s ^ (unsigned)live_streams;
    s->next = streams;
    streams = s;
    live_streams++;
    pthread_mutex_unlock(&mu);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, s)) {
        pthread_mutex_lock(&mu);
        s->destroyed = 1; /* never started: unlink by hand */
        streams = s->next;
        live_streams--;
        pthread_mutex_unlock(&mu);
        free(s);
        return ERR_MEMORY_ALLOCATION;
    }
    pthread_detach(t);
    *out = s;
    return SUCCESS;
}

/* Like CUDA: returns at once; queued work completes, then the stream is freed. */
cudaError_t cudaStreamDestroy(void *p) {
    struct stream *s = p;
    pthread_mutex_lock(&mu);
    cudaError_t r = SUCCESS;
    if (!live_stream(s)) {
        violation("cudaStreamDestroy of %p (%zu): not a live stream", p, 0);
        r = ERR_INVALID_RESOURCE_HANDLE;
    } else {
        s->destroyed = 1;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&mu);
    return r;
}

cudaError_t cudaStreamSynchronize(void *p) {
    struct stream *s = p;
    pthread_mutex_lock(&mu);
    if (!live_stream(s)) {
        violation("cudaStreamSynchronize of %p (%zu): not a live stream", p, 0);
        pthread_mutex_unlock(&mu);
        return ERR_INVALID_RESOURCE_HANDLE;
    }
    while (s->head) pthread_cond_wait(&progress, &mu);
    cudaError_t r = sticky;
    pthread_mutex_unlock(&mu);
    return r;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *stream) {
    struct stream *s = stream;
    pthread_mutex_lock(&mu);
    cudaError_t r = sticky;
    if (!r && ++async_calls == fail_async_call) r = ERR_INVALID_VALUE;
    if (!r && !live_stream(s)) {
        violation("cudaMemcpyAsync on %p (%zu): not a live stream", s, 0);
        r = ERR_INVALID_RESOURCE_HANDLE;
    }
    if (!r && kind != 1) {
        violation("cudaMemcpyAsync %p: kind %zu, expected host-to-device", dst, (size_t)kind);
        r = ERR_INVALID_VALUE;
    }
    if (!r) {
        struct alloc *a = find(dst, n, KIND_DEVICE);
        if (!a || a->device != s->device) {
            violation("cudaMemcpyAsync destination %p (%zu bytes) is not device memory of the stream's device", dst, n);
            r = ERR_INVALID_VALUE;
        }
    }
    if (!r && queued_use(dst, n, 1)) {
        violation("cudaMemcpyAsync destination %p (%zu bytes) is written by another queued copy", dst, n);
    }
    if (!r) {
        if (!find(src, n, KIND_PINNED)) pageable_copies++;
        struct op *o = calloc(1, sizeof *o);
        if (!o) {
            r = ERR_MEMORY_ALLOCATION;
        } else {
            *o = (struct op){OP_COPY, dst, src, n, hash(src, n), NULL, 0, NULL};
            enqueue(s, o);
        }
    }
    pthread_mutex_unlock(&mu);
    return r;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, int kind) {
    pthread_mutex_lock(&mu);
    cudaError_t r = sticky;
    if (!r && kind == 2) {
        if (!find(src, n, KIND_DEVICE)) {
            violation("cudaMemcpy source %p (%zu bytes) is not device memory", src, n);
            r = ERR_INVALID_VALUE;
        } else if (queued_use(src, n, 1)) {
            violation("cudaMemcpy reads device memory %p (%zu bytes) that queued copies still write", src, n);
        }
    } else if (!r && kind == 1) {
        if (!find(dst, n, KIND_DEVICE)) {
            violation("cudaMemcpy destination %p (%zu bytes) is not device memory", dst, n);
            r = ERR_INVALID_VALUE;
        }
    } else if (!r) {
        r = ERR_INVALID_VALUE;
    }
    pthread_mutex_unlock(&mu);
    if (!r) memcpy(dst, src, n);
    return r;
}

cudaError_t cudaEventCreateWithFlags(void **out, unsigned flags) {
    (void)flags;
    struct event *e = calloc(1, sizeof *e);
    if (!e) return ERR_MEMORY_ALLOCATION;
    pthread_mutex_lock(&mu);
    live_events++;
    pthread_mutex_unlock(&mu);
    *out = e;
    return SUCCESS;
}

cudaError_t cudaEventRecord(void *event, void *stream) {
    struct event *e = event;
    struct stream *s = stream;
    pthread_mutex_lock(&mu);
    cudaError_t r = sticky;
    if (!r && !live_stream(s)) {
        violation("cudaEventRecord on %p (%zu): not a live stream", s, 0);
        r = ERR_INVALID_RESOURCE_HANDLE;
    }
    struct op *o = r ? NULL : calloc(1, sizeof *o);
    if (!r && !o) r = ERR_MEMORY_ALLOCATION;
    if (!r) {
        *o = (struct op){OP_RECORD, NULL, NULL, 0, 0, e, ++e->recorded, NULL};
        enqueue(s, o);
    }
    pthread_mutex_unlock(&mu);
    return r;
}

cudaError_t cudaEventSynchronize(void *event) {
    struct event *e = event;
    pthread_mutex_lock(&mu);
    uint64_t want = e->recorded;
    while (e->done < want) pthread_cond_wait(&progress, &mu);
    cudaError_t r = sticky;
    pthread_mutex_unlock(&mu);
    return r;
}

/* Like CUDA: an event still pending is released once it completes. */
cudaError_t cudaEventDestroy(void *event) {
    struct event *e = event;
    pthread_mutex_lock(&mu);
    if (e->done >= e->recorded) {
        free(e);
        live_events--;
    } else {
        e->destroyed = 1;
    }
    pthread_mutex_unlock(&mu);
    return SUCCESS;
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case SUCCESS: return "no error";
    case ERR_INVALID_VALUE: return "invalid argument";
    case ERR_MEMORY_ALLOCATION: return "out of memory";
    case ERR_NO_DEVICE: return "no CUDA-capable device is detected";
    case ERR_INVALID_DEVICE: return "invalid device ordinal";
    case ERR_INVALID_RESOURCE_HANDLE: return "invalid resource handle";
    case ERR_LAUNCH_FAILURE: return "unspecified launch failure";
    default: return "unrecognized error code";
    }
}
