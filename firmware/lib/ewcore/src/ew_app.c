/* Node application, frame dispatch (top layer): received frames -> CMD / CONFIG / INJECT
 * handlers, poll, statistics, init.  Calls every other ew_app_*.c file; none calls back
 * (layers: ew_app_tx.c <- ew_app_input.c <- ew_app_settings.c, ew_app_inject.c <- ew_app.c). */
#include <string.h>

#include "ew_app_internal.h"

#define INJ EW_APP_INJECT_SAMPLES

/* ------------------------------------------------------------------------------------------ */
/* Frame dispatch                                                                             */

static void handle_cmd(ew_app_t *a, uint16_t seq, const uint8_t *p, size_t len) {
    ew_proto_cmd_t m;
    if (ew_proto_unpack_cmd(p, len, &m) != EW_PROTO_OK) {
        a->st.rx_bad_payload++;
        ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "CMD: payload shorter than 5 bytes");
        return;
    }
    switch (m.command) {
    case EW_CMD_HELLO: ew_app_send_hello(a); break;
    case EW_CMD_REBOOT:
        if (a->port.reboot == NULL) {
            ew_app__send_error(a, EW_ERRC_UNSUPPORTED, seq, "REBOOT: not supported by this port");
            break;
        }
        ew_app__send_ack(a, seq, EW_MSG_CMD);
        a->rebooting = 1;
        a->port.reboot(a->port.ctx);
        break;
    case EW_CMD_STATUS: ew_app_send_status(a); break;
    case EW_CMD_START_STREAM:
        if (m.arg > 1) {
            ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq,
                               "START_STREAM: arg is 0 (mic) or 1 (inject)");
            break;
        }
        ew_app__end_stream(a); /* the old stream's last EVENTs precede the ACK */
        ew_app__send_ack(a, seq, EW_MSG_CMD);
        ew_app__start_stream(a, m.arg == 1 ? EW_APP_INPUT_INJECT : EW_APP_INPUT_MIC);
        break;
    case EW_CMD_STOP_STREAM:
        ew_app__end_stream(a);
        ew_app__send_ack(a, seq, EW_MSG_CMD);
        break;
    case EW_CMD_FACTORY_RESET:
        ew_app_factory_reset(a);
        ew_app__send_ack(a, seq, EW_MSG_CMD);
        break;
    default: ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "CMD: unknown command"); break;
    }
}

static void handle_config(ew_app_t *a, uint8_t type, uint16_t seq, const uint8_t *p, size_t len) {
    int32_t value = 0;
    int rc;
    uint16_t key;
    if (type == EW_MSG_CONFIG_GET) {
        ew_proto_config_get_t m;
        if (ew_proto_unpack_config_get(p, len, &m) != EW_PROTO_OK) {
            a->st.rx_bad_payload++;
            ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq,
                               "CONFIG_GET: payload shorter than 2 bytes");
            return;
        }
        key = m.key;
        rc = ew_app_config_get(a, key, &value);
    } else {
        ew_proto_config_t m;
        if (ew_proto_unpack_config(p, len, &m) != EW_PROTO_OK) {
            a->st.rx_bad_payload++;
            ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq,
                               "CONFIG_SET: payload shorter than 6 bytes");
            return;
        }
        key = m.key;
        rc = ew_app_config_set(a, key, m.value, &value);
    }
    if (rc == EW_APP_ERR_KEY) {
        ew_app__send_error(a, EW_ERRC_BAD_CONFIG_KEY, seq, "unknown CONFIG key");
        return;
    }
    if (rc != EW_OK) {
        ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "CONFIG value out of range");
        return;
    }
    ew_app__send_config(a, key, value);
    if (type == EW_MSG_CONFIG_SET && key == EW_CFG_BAUD && a->port.set_baud != NULL &&
        a->port.set_baud(a->port.ctx, a->set.baud) < 0)
        a->st.persist_errors++;
}

static void on_item(void *ctx, const ew_proto_item_t *it) {
    ew_app_t *a = (ew_app_t *)ctx;
    if (a->rebooting) return;
    switch (it->kind) {
    case EW_PROTO_ITEM_FRAME: break;
    case EW_PROTO_ITEM_SEQ_GAP:
        a->st.rx_seq_gaps++;
        a->pending_seq_gap += it->count;
        return;
    case EW_PROTO_ITEM_ERROR: {
        a->st.rx_bad_frames++;
        ew_app_msg_t msg = { { 0 }, 0 };
        ew_app__msg_str(&msg, "bad frame: ");
        ew_app__msg_str(&msg, ew_proto_bad_name(it->error));
        ew_app__msg_str(&msg, ", ");
        ew_app__msg_u64(&msg, it->raw_len);
        ew_app__msg_str(&msg, " bytes");
        ew_app__send_error(a, EW_ERRC_BAD_FRAME, 0, msg.buf);
        return;
    }
    default: /* log text, backward seq, host reset */ return;
    }
    a->st.rx_frames++;
    if (a->pending_seq_gap > 0 && it->type != EW_MSG_INJECT) ew_app__report_seq_gap(a, it->seq, 0);
    switch (it->type) {
    case EW_MSG_HELLO: ew_app_send_hello(a); break;
    case EW_MSG_CMD: handle_cmd(a, it->seq, it->data, it->len); break;
    case EW_MSG_CONFIG_GET:
    case EW_MSG_CONFIG_SET: handle_config(a, it->type, it->seq, it->data, it->len); break;
    case EW_MSG_INJECT: ew_app__handle_inject(a, it->seq, it->data, it->len); break;
    case EW_MSG_ACK:
    case EW_MSG_ERROR: /* a host's ACK / ERROR needs no answer */ break;
    default: { /* unknown, or a node->host type */
        a->st.rx_unknown++;
        ew_app_msg_t msg = { { 0 }, 0 };
        ew_app__msg_str(&msg, "type ");
        ew_app__msg_u64(&msg, it->type);
        ew_app__msg_str(&msg, it->unknown_type ? " is unknown" : " is not handled by the node");
        ew_app__send_error(a, EW_ERRC_UNKNOWN_TYPE, it->seq, msg.buf);
        break;
    }
    }
}

void ew_app_rx(ew_app_t *a, const uint8_t *data, size_t n) {
    if (a == NULL || a->rebooting || (data == NULL && n > 0)) return;
    ew_proto_decoder_feed(&a->dec, data, n, on_item, a);
}

void ew_app_poll(ew_app_t *a) {
    if (a == NULL || a->rebooting) return;
    if (a->input == EW_APP_INPUT_INJECT) {
        ew_app__inject_drain(a, INJ);
        ew_app__grant(a);
    }
    ew_app__audio_send(a, EW_APP_AUDIO_BURST, 0);
    if (a->set.status_period_ms > 0) {
        const uint64_t now = a->port.time_us(a->port.ctx);
        if (now - a->status_t0_us >= (uint64_t)a->set.status_period_ms * 1000u)
            ew_app_send_status(a);
    }
}

void ew_app_get_stats(const ew_app_t *a, ew_app_stats_t *out) {
    *out = a->st;
    out->input = a->input;
    out->inject_queued = a->inj_count;
}

/* ------------------------------------------------------------------------------------------ */
/* Init                                                                                       */

static int name_ok(const char *s) {
    size_t n = 0;
    while (s[n] != '\0' && n <= EW_PROTO_MAX_NAME) n++;
    return n <= EW_PROTO_MAX_NAME;
}

int ew_app_init(ew_app_t *a, const ew_app_info_t *info, const ew_port_t *port) {
    if (a == NULL || info == NULL || port == NULL || port->write == NULL || port->time_us == NULL ||
        port->classify == NULL || info->labels == NULL || info->board == NULL)
        return EW_ERR_ARG;
    if (info->n_classes == 0 || info->n_classes > EW_MAX_CLASSES || !name_ok(info->board) ||
        ew_quant_check(&info->quant) != EW_OK)
        return EW_ERR_CONFIG;
    for (int c = 0; c < info->n_classes; c++) {
        if (info->labels[c] == NULL) return EW_ERR_ARG;
        if (!name_ok(info->labels[c])) return EW_ERR_CONFIG;
        if (info->thresholds_q8 != NULL && info->thresholds_q8[c] > EW_THRESHOLD_OFF)
            return EW_ERR_CONFIG;
    }
    unsigned factor = 0;
    if (info->adc_rate_hz != 0) {
        if (info->adc_rate_hz % EW_SAMPLE_RATE_HZ != 0) return EW_ERR_FACTOR;
        factor = info->adc_rate_hz / EW_SAMPLE_RATE_HZ;
    }
    memset(a, 0, sizeof(*a));
    if (factor != 0) {
        const int rc = ew_decim_init(&a->decim, factor);
        if (rc != EW_OK) return rc;
        a->has_adc = 1;
    }
    a->info = *info;
    a->port = *port;
    ew_app__settings_default(a);
    int rc = ew_app__node_init(a);
    if (rc != EW_OK) return rc;
    if (a->port.config_load != NULL) {
        uint8_t blob[EW_PORT_CONFIG_MAX];
        const int len = a->port.config_load(a->port.ctx, blob, sizeof(blob));
        if (len > 0) {
            a->loading = 1;
            if (ew_app__load_blob(a, blob, (size_t)len) < 0 && a->port.log != NULL)
                a->port.log(a->port.ctx, "ew_app: persisted configuration invalid, using defaults");
            a->loading = 0;
        }
    }
    const uint32_t default_baud =
        info->default_baud != 0 ? info->default_baud : EW_APP_DEFAULT_BAUD;
    if (a->set.baud != default_baud && a->port.set_baud != NULL &&
        a->port.set_baud(a->port.ctx, a->set.baud) < 0)
        a->st.persist_errors++;
    ew_proto_decoder_init(&a->dec);
    a->feed_factor = (uint8_t)(factor != 0 ? factor : 1);
    ew_app__new_stream(a);
    a->input = EW_APP_INPUT_MIC;
    a->status_t0_us = a->port.time_us(a->port.ctx);
    ew_app_send_hello(a);
    return EW_OK;
}

size_t ew_app_sizeof(void) { return sizeof(ew_app_t); }

int ew_app_limits(uint32_t *out, int cap) {
    const uint32_t v[6] = { EW_APP_INJECT_SAMPLES,         EW_APP_CREDIT_STEP,
                            EW_APP_AUDIO_RING_SAMPLES,     EW_APP_EVENT_PREROLL_SAMPLES,
                            EW_APP_EVENT_POSTROLL_SAMPLES, EW_APP_AUDIO_FRAME_SAMPLES };
    for (int i = 0; i < 6 && i < cap && out != NULL; i++) out[i] = v[i];
    return 6;
}
