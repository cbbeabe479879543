/* lg_stats.c - latency histogram and counter merging for certstream-loadgen. */
#include "lg_stats.h"

#include <math.h>

const char *const lg_reason_name[LG_R_COUNT] = {
    "close_1000", "close_1001", "close_1006", "close_1008", "close_1011", "close_other", "sse_end",
    "eof", "error", "protocol", "stalled_dropped", "connect", "timeout", "http_401", "http_404",
    "http_429", "http_503", "http_other", "handshake_eof", "handshake_bad",
};

const char *const lg_class_name[LG_CLASS_COUNT] = {"normal", "slow", "stalled", "lws"};

void lg_hist_add(struct lg_hist *h, int64_t us)
{
    if (us < 0) us = 0; /* seen is taken before the send: only rounding gets here */
    uint64_t u = (uint64_t)us;
    size_t i;
    if (u < LG_HIST_LIN) {
        i = (size_t)u;
    } else {
        /* Rare (>= 100 ms): a log() is fine here. */
        double k = log((double)u / LG_HIST_LIN) / log(LG_HIST_STEP);
        i = LG_HIST_LIN + (k >= LG_HIST_LOG - 1 ? LG_HIST_LOG - 1 : (size_t)k);
    }
    h->b[i]++;
    h->n++;
    h->sum_us += u;
    if (u > h->max_us) h->max_us = u;
}

void lg_hist_merge(struct lg_hist *to, const struct lg_hist *from)
{
    to->n += from->n;
    to->sum_us += from->sum_us;
    if (from->max_us > to->max_us) to->max_us = from->max_us;
    for (size_t i = 0; i < LG_HIST_LIN + LG_HIST_LOG; i++) to->b[i] += from->b[i];
}

double lg_hist_quantile(const struct lg_hist *h, double q)
{
    if (h->n == 0) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->n);
    if (want == 0) want = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < LG_HIST_LIN + LG_HIST_LOG; i++) {
        acc += h->b[i];
        if (acc >= want) {
            double v = i < LG_HIST_LIN ? (double)i : LG_HIST_LIN * pow(LG_HIST_STEP, (double)(i - LG_HIST_LIN));
            return v > (double)h->max_us ? (double)h->max_us : v;
        }
    }
    return (double)h->max_us;
}

void lg_class_merge(struct lg_class *to, const struct lg_class *f)
{
    to->clients += f->clients;
    to->established += f->established;
    to->failed += f->failed;
    to->disconnected += f->disconnected;
    to->msgs_total += f->msgs_total;
    to->bytes_total += f->bytes_total;
    to->msgs += f->msgs;
    to->bytes += f->bytes;
    to->wire_bytes += f->wire_bytes;
    to->heartbeats += f->heartbeats;
    to->pings += f->pings;
    to->no_stamp += f->no_stamp;
    to->seen_ms += f->seen_ms;
    to->compressed += f->compressed;
    to->unparsed += f->unparsed;
    to->out_of_order += f->out_of_order;
    to->loop_restarts += f->loop_restarts;
    to->gaps += f->gaps;
    to->sse_id_back += f->sse_id_back;
    to->reconnects += f->reconnects;
    for (int r = 0; r < LG_R_COUNT; r++) to->reasons[r] += f->reasons[r];
    lg_hist_merge(&to->lat, &f->lat);
}

/* Windows of different workers overlap almost entirely; the merged window
 * is the longest, and rates are computed per worker then summed by the
 * caller (msgs/window of each) to stay exact. */
void lg_report_merge(struct lg_report *to, const struct lg_report *f)
{
    if (f->window_s > to->window_s) to->window_s = f->window_s;
    if (f->ramp_s > to->ramp_s) to->ramp_s = f->ramp_s;
    to->cpu_s += f->cpu_s;
    to->cpu_total_s += f->cpu_total_s;
    to->lws_sample_disabled |= f->lws_sample_disabled;
    to->ramp_unresolved += f->ramp_unresolved;
    for (int c = 0; c < LG_CLASS_COUNT; c++) {
        lg_class_merge(&to->cls[c], &f->cls[c]);
        to->msg_rate[c] += f->msg_rate[c];
        to->byte_rate[c] += f->byte_rate[c];
    }
}
