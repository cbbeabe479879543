/* stream_metrics.h - /metrics families of the stream features (stream_metrics.c). */
#ifndef CS_FANOUT_STREAM_METRICS_H
#define CS_FANOUT_STREAM_METRICS_H

#include "fanout/fanout_internal.h"

void route_metrics_stream(struct worker *w, struct jbuf *b, bool om);

#endif
