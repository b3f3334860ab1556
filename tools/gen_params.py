"""Generate the core's parameter header and tables from firmware/lib/ewcore/ewcore.toml.

    python -m tools.gen_params            # write ew_params.h, ew_tables.c, the CONFIG settings
    python -m tools.gen_params --check    # exit 1 if the committed files are stale

From the [[setting]] table it also writes include/ew_settings.h (CONFIG keys, range table type),
src/ew_settings.c (the table the node validates CONFIG_SET with) and the settings table of
docs/protocol.md (between the GENERATED markers).

The output is deterministic (no dates, no paths); the header carries a banner, the schema
version the core checks at compile time, and the SHA-256 of the canonical configuration
(reported by the node in its HELLO frame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.node import params as P

HEADER = P.ROOT / "firmware" / "lib" / "ewcore" / "include" / "ew_params.h"
TABLES = P.ROOT / "firmware" / "lib" / "ewcore" / "src" / "ew_tables.c"
SETTINGS_H = P.ROOT / "firmware" / "lib" / "ewcore" / "include" / "ew_settings.h"
SETTINGS_C = P.ROOT / "firmware" / "lib" / "ewcore" / "src" / "ew_settings.c"
PROTOCOL_MD = P.ROOT / "docs" / "protocol.md"
DOC_BEGIN = (
    "<!-- BEGIN GENERATED settings: python -m tools.gen_params (from ewcore.toml [[setting]]) -->"
)
DOC_END = "<!-- END GENERATED settings -->"
BANNER = (
    "/* GENERATED FILE - DO NOT EDIT.\n"
    " * Source: firmware/lib/ewcore/ewcore.toml; regenerate with `python -m tools.gen_params`.\n"
    " * config_hash: {h}\n */\n"
)


def _array(ctype: str, name: str, values, per_line: int = 12) -> str:
    rows = []
    for i in range(0, len(values), per_line):
        rows.append("    " + ", ".join(str(v) for v in values[i : i + per_line]) + ",")
    return f"const {ctype} {name}[{len(values)}] = {{\n" + "\n".join(rows) + "\n};\n"


def render(p: P.Params) -> tuple[str, str]:
    g, d, q = p.gate_fixed, p.detector_fixed, p.quant
    starts, lens, weights = p.mel_sparse
    h = p.config_hash
    hash_bytes = ", ".join(f"0x{h[i : i + 2]}" for i in range(0, 16, 2))
    defs = [
        ("EW_PARAMS_SCHEMA_VERSION", P.SCHEMA_VERSION, "schema of this header (core checks it)"),
        ("EW_SAMPLE_RATE_HZ", p.sample_rate_hz, "rate of everything after the decimator"),
        ("EW_ADC_BITS", p.adc_bits, "ADC code width"),
        ("EW_DECIM_MAX_TAPS", max(p.decim_taps), "longest decimator FIR"),
        ("EW_DC_POLE_SHIFT", p.dc_pole_shift, "DC blocker pole = 1 - 2^-shift"),
        ("EW_DC_FRAC_BITS", p.dc_frac_bits, "fractional bits of the DC blocker state"),
        ("EW_FRAME_SAMPLES", p.frame_samples, "analysis frame = FFT size"),
        ("EW_FRAME_LOG2", p.frame_samples.bit_length() - 1, "log2(EW_FRAME_SAMPLES)"),
        ("EW_HOP_SAMPLES", p.hop_samples, "hop = gate block"),
        ("EW_HOP_LOG2", p.hop_log2, "log2(EW_HOP_SAMPLES)"),
        ("EW_FFT_BINS", p.fft_bins, "one-sided spectrum bins"),
        ("EW_N_MELS", p.n_mels, "mel bands"),
        ("EW_MEL_WEIGHTS", len(weights), "non-zero mel weights"),
        ("EW_WINDOW_FRAC_BITS", p.window_frac_bits, "fraction bits kept after the window"),
        ("EW_POWER_SHIFT", p.power_shift, "|2X|^2 >> (POWER_SHIFT + 2) before the mel weights"),
        ("EW_FRAMES_PER_WINDOW", p.frames_per_window, "frames per analysis window (model input)"),
        ("EW_WINDOW_SAMPLES", p.window_samples, "samples spanned by one analysis window"),
        ("EW_LOG2_LUT_BITS", P.LOG2_LUT_BITS, "log2 table: 2^bits segments"),
        ("EW_LOG2_LUT_FRAC", P.LOG2_LUT_FRAC, "log2 table values in Q14"),
        ("EW_GATE_WINDOW_BLOCKS", g["window_blocks"], "L: sliding window of block powers"),
        (
            "EW_GATE_FLOOR_Q8",
            g["floor_q8"],
            f"absolute floor, log2(mean square) Q8 ({p.gate['floor_dbfs']} dBFS)",
        ),
        (
            "EW_GATE_ONSET_MARGIN_Q8",
            g["onset_margin_q8"],
            f"{p.gate['onset_margin_db']} dB in log2 Q8",
        ),
        (
            "EW_GATE_JUMP_MARGIN_Q8",
            g["jump_margin_q8"],
            f"{p.gate['jump_margin_db']} dB in log2 Q8",
        ),
        (
            "EW_GATE_CONFIRM_MARGIN_Q8",
            g["confirm_margin_q8"],
            f"{p.gate['confirm_margin_db']} dB in log2 Q8",
        ),
        ("EW_GATE_ONSET_BLOCKS", g["onset_blocks"], "blocks an onset must last (1..4)"),
        (
            "EW_GATE_STRONG_MARGIN_Q8",
            g["strong_margin_q8"],
            f"{p.gate['strong_margin_db']} dB in log2 Q8",
        ),
        (
            "EW_GATE_SUSTAIN_MARGIN_Q8",
            g["sustain_margin_q8"],
            f"{p.gate['sustain_margin_db']} dB in log2 Q8",
        ),
        (
            "EW_GATE_SPREAD_MAX_Q16",
            g["spread_max_q16"],
            f"normalised-power variance {p.gate['spread_max']} in Q16",
        ),
        (
            "EW_GATE_SUSTAIN_BLOCKS",
            g["sustain_blocks"],
            "blocks above the sustain margin before LOUD",
        ),
        (
            "EW_GATE_RECHECK_BLOCKS",
            g["recheck_blocks"],
            "re-open period while a sustained event lasts",
        ),
        (
            "EW_GATE_BG_FALL_SHIFT",
            g["bg_fall_shift"],
            "background estimate fall time constant 2^n blocks",
        ),
        (
            "EW_GATE_BG_RISE_SHIFT",
            g["bg_rise_shift"],
            "background estimate rise time constant 2^n blocks",
        ),
        ("EW_GATE_NF_FALL_SHIFT", g["nf_fall_shift"], "noise floor fall time constant 2^n blocks"),
        ("EW_GATE_NF_RISE_SHIFT", g["nf_rise_shift"], "noise floor rise time constant 2^n blocks"),
        (
            "EW_GATE_WARMUP_BLOCKS",
            g["warmup_blocks"],
            "blocks after reset that only seed the background",
        ),
        (
            "EW_GATE_PEAK_MARGIN_Q8",
            g["peak_margin_q8"],
            f"{p.gate['peak_margin_db']} dB in log2 Q8",
        ),
        (
            "EW_GATE_PEAK_DECAY_Q8",
            g["peak_decay_q8"],
            f"{p.gate['peak_decay_db_per_s']} dB/s, log2 Q8 per block",
        ),
        (
            "EW_GATE_TONAL_MARGIN_Q8",
            g["tonal_margin_q8"],
            f"{p.gate['tonal_margin_db']} dB in log2 Q8",
        ),
        ("EW_GATE_TONAL_SHIFT", g["tonal_shift"], "tonality smoothing time constant 2^n frames"),
        (
            "EW_DET_PREROLL_FRAMES",
            d["preroll_frames"],
            "window starts this many hops before the trigger",
        ),
        (
            "EW_DET_EARLY_PREROLL_FRAMES",
            d["early_preroll_frames"],
            "an onset also opens a window this many hops before it (0 = off)",
        ),
        (
            "EW_DET_EARLY_CONTINUE_BLOCKS",
            d["early_continue_blocks"],
            "keep the main window if the sound is on in the early window's last N blocks...",
        ),
        (
            "EW_DET_EARLY_CONTINUE_MARGIN_Q8",
            d["early_continue_margin_q8"],
            f"...i.e. {p.detector.get('early_continue_margin_db', 0.0)} dB over the noise floor (log2 Q8)",
        ),
        (
            "EW_DET_HABITUATE_ONSETS",
            d["habituate_onsets"],
            "habituation after this many confidently rejected onsets (0 = off)",
        ),
        (
            "EW_DET_HABITUATE_MAX_SCORE_Q8",
            d["habituate_max_score_q8"],
            f"...rejected: every enabled class scored below {p.detector.get('habituate_max_score', 0.0)} (Q0.8)",
        ),
        (
            "EW_DET_HABITUATE_MARGIN_Q8",
            d["habituate_margin_q8"],
            f"...onsets up to {p.detector.get('habituate_margin_db', 0.0)} dB over them open no window (log2 Q8)...",
        ),
        (
            "EW_DET_HABITUATE_BLOCKS",
            d["habituate_blocks"],
            f"...for {p.detector.get('habituate_s', 0.0)} s after the last one (blocks)",
        ),
        (
            "EW_DET_HABITUATE_RECHECKS",
            d["habituate_rechecks"],
            "slow re-checks after this many clearly rejected in a row (0 = off)...",
        ),
        (
            "EW_DET_HABITUATE_RECHECK_MAX_SCORE_Q8",
            d["habituate_recheck_max_score_q8"],
            f"...rejected: every enabled class scored below {p.detector.get('habituate_recheck_max_score', 0.0)} (Q0.8)...",
        ),
        (
            "EW_DET_HABITUATE_RECHECK_BLOCKS",
            d["habituate_recheck_blocks"],
            f"...to one per {p.detector.get('habituate_recheck_s', 0.0)} s (blocks)",
        ),
        (
            "EW_DET_HOLDOFF_SAMPLES",
            d["holdoff_samples"],
            f"{p.detector['holdoff_ms']} ms merge/hold-off",
        ),
        (
            "EW_DET_DEFAULT_THRESHOLD_Q8",
            d["default_threshold_q8"],
            f"score threshold {p.detector['default_threshold']} (Q0.8)",
        ),
        (
            "EW_DET_CONTINUOUS_STRIDE",
            d["continuous_stride_frames"],
            "continuous mode: classify every N hops",
        ),
        (
            "EW_QUANT_MULT",
            q.mult,
            f"int8 input: scale {q.scale} -> q = zp + (L*mult + 2^(shift-1)) >> shift",
        ),
        ("EW_QUANT_SHIFT", q.shift, "quantiser shift"),
        ("EW_QUANT_ZERO_POINT", q.zero_point, "int8 input zero point"),
    ]
    width = max(len(n) for n, _, _ in defs) + 1
    lines = [
        BANNER.format(h=h),
        "#ifndef EW_PARAMS_H",
        "#define EW_PARAMS_H",
        "",
        "#include <stdint.h>",
        "",
    ]
    for name, value, comment in defs:
        lines.append(f"#define {name.ljust(width)} {value}  /* {comment} */")
    lines += [
        "",
        f'#define EW_CONFIG_HASH_STR "{h}"',
        f"#define EW_CONFIG_HASH8 {{ {hash_bytes} }}  /* first 8 bytes, as in HELLO */",
        "",
        "extern const int16_t ew_hann_q15[EW_FRAME_SAMPLES];",
        "extern const int32_t ew_twiddle_cos_q31[EW_FRAME_SAMPLES / 2];",
        "extern const int32_t ew_twiddle_sin_q31[EW_FRAME_SAMPLES / 2];",
        "extern const uint16_t ew_bitrev[EW_FRAME_SAMPLES / 2];",
        "",
        "/** A symmetric decimation FIR, folded: sum_i coef[i] (x[off[i]] + x[n-1-off[i]]) + centre x[n/2]. */",
        "typedef struct {",
        "    uint8_t factor, n_taps, n_pairs;",
        "    uint8_t off_step;          /* offsets are off[0] + i * off_step (0: irregular) */",
        "    int16_t centre;            /* Q15, 0 for an even length */",
        "    const uint8_t *off;",
        "    const int16_t *coef;       /* Q15 */",
        "} ew_decim_filter_t;",
        f"#define EW_N_DECIM_FILTERS {len(p.decim_factors)}",
        "extern const ew_decim_filter_t ew_decim_filters[EW_N_DECIM_FILTERS];",
        "extern const uint16_t ew_mel_start[EW_N_MELS];",
        "extern const uint16_t ew_mel_len[EW_N_MELS];",
        "extern const uint16_t ew_mel_weights_q15[EW_MEL_WEIGHTS];",
        "extern const uint16_t ew_log2_lut_q14[(1 << EW_LOG2_LUT_BITS) + 1];",
    ]
    lines += ["", "#endif /* EW_PARAMS_H */", ""]
    header = "\n".join(lines)

    cos, sin = p.twiddles_q31
    parts = [
        BANNER.format(h=h),
        '#include "ew_params.h"',
        "",
        _array("int16_t", "ew_hann_q15", p.hann_q15),
        _array("int32_t", "ew_twiddle_cos_q31", cos, per_line=6),
        _array("int32_t", "ew_twiddle_sin_q31", sin, per_line=6),
        _array("uint16_t", "ew_bitrev", p.bitrev),
        _array("uint16_t", "ew_mel_start", starts),
        _array("uint16_t", "ew_mel_len", lens),
        _array("uint16_t", "ew_mel_weights_q15", weights),
        _array("uint16_t", "ew_log2_lut_q14", p.log2_lut_q14),
    ]
    entries = []
    for f, n in zip(p.decim_factors, p.decim_taps):
        offs, coefs, centre = p.decim_folded(f)
        parts.append("static " + _array("uint8_t", f"decim{f}_off", offs))
        parts.append("static " + _array("int16_t", f"decim{f}_coef_q15", coefs))
        steps = {b - a for a, b in zip(offs, offs[1:])}
        step = steps.pop() if len(steps) == 1 else 0
        entries.append(
            f"    {{{f}, {n}, {len(offs)}, {step}, {centre}, decim{f}_off, decim{f}_coef_q15}},"
        )
    parts.append(
        "const ew_decim_filter_t ew_decim_filters[EW_N_DECIM_FILTERS] = {\n"
        + "\n".join(entries)
        + "\n};\n"
    )
    return header, "\n".join(parts)


def _doc_default(p: P.Params, s) -> str:
    if s.default == "board":
        return "board (921600)"
    if isinstance(s.default, str):
        section, _, name = s.default.partition(".")
        return f"{p.raw[section][name]} (`{s.default}`)"
    return f"{s.default}"


def render_settings(p: P.Params, doc: str) -> tuple[str, str, str]:
    """ew_settings.h, ew_settings.c and docs/protocol.md (its generated table replaced)."""
    table, thr = P.settings_from(p.raw)
    h = p.config_hash
    width = max(len(s.id) for s in table) + len("EW_CFG_") + 1
    lines = [
        BANNER.format(h=h),
        "#ifndef EW_SETTINGS_H",
        "#define EW_SETTINGS_H",
        "",
        "#include <stdint.h>",
        "",
        "/** CONFIG keys (CONFIG_GET / CONFIG_SET / CONFIG).  Units and ranges: docs/protocol.md. */",
        "enum {",
    ]
    for s in table:
        unit = f"{s.unit}, " if s.unit else ""
        lines.append(
            f"    {('EW_CFG_' + s.id + ' =').ljust(width + 2)} 0x{s.key:04X},  "
            f"/**< {unit}raw {s.min}..{s.max}{' or 0 (off)' if s.zero_off else ''} */"
        )
    lines += [
        f"    {'EW_CFG_THRESHOLD_BASE ='.ljust(width + 2)} 0x{thr.key_base:04X},  "
        f"/**< + class index: threshold Q0.8, {thr.max} = class off */",
        f"    {'EW_CFG_THRESHOLD_LAST ='.ljust(width + 2)} 0x{thr.key_last:04X},",
        "};",
        "",
        "#define EW_SETTING_ZERO_OFF 0x01u   /**< raw 0 (off) is accepted besides min..max */",
        "#define EW_SETTING_PERSISTED 0x02u  /**< saved in the configuration blob (NVS) */",
        "#define EW_SETTING_RESTART 0x04u    /**< a change restarts the detector */",
        "",
        "/** One CONFIG setting: its key, the raw (wire) range CONFIG_SET accepts, flags. */",
        "typedef struct {",
        "    uint16_t key;",
        "    uint8_t flags;      /* EW_SETTING_* */",
        "    int32_t min, max;   /* inclusive, raw wire units */",
        "} ew_setting_t;",
        "",
        f"#define EW_N_SETTINGS {len(table)}u",
        f"#define EW_N_PERSISTED_SETTINGS {sum(s.persisted for s in table)}u",
        f"#define EW_THRESHOLD_MAX_Q8 {thr.max}  /* threshold range 0..this (this = class off) */",
        "/** In key order; the persisted ones are saved in this order. */",
        "extern const ew_setting_t ew_settings[EW_N_SETTINGS];",
        "",
        "#endif /* EW_SETTINGS_H */",
        "",
    ]
    header = "\n".join(lines)
    rows = []
    for s in table:
        flags = (
            " | ".join(
                f
                for f, on in (
                    ("EW_SETTING_ZERO_OFF", s.zero_off),
                    ("EW_SETTING_PERSISTED", s.persisted),
                    ("EW_SETTING_RESTART", s.restart),
                )
                if on
            )
            or "0"
        )
        rows.append(f"    {{EW_CFG_{s.id}, {flags}, {s.min}, {s.max}}},")
    source = (
        BANNER.format(h=h) + '#include "ew_settings.h"\n\n'
        "const ew_setting_t ew_settings[EW_N_SETTINGS] = {\n" + "\n".join(rows) + "\n};\n"
    )
    md = [
        DOC_BEGIN,
        "",
        "| key | name | host name (unit) | raw range | default | persisted | value |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in table:
        rng = f"{s.min}..{s.max}" + (" or 0" if s.zero_off else "")
        host = f"`{s.name}`" + (
            f" ({s.unit}, x{s.scale})" if s.unit else f" (x{s.scale})" if s.scale != 1 else ""
        )
        md.append(
            f"| 0x{s.key:04X} | {s.id} | {host} | {rng} | {_doc_default(p, s)} | "
            f"{'yes' if s.persisted else 'no'} | {s.wire} |"
        )
    md += [
        f"| 0x{thr.key_base:04X} + i | THRESHOLD(i) | `{thr.name_prefix}<label>` (x{thr.scale}) | "
        f"0..{thr.max} | model, else {p.raw['detector']['default_threshold']} "
        f"(`{thr.default}`) | yes | score threshold of class i, Q0.8 (0..255), {thr.max} = class disabled |",
        "",
        DOC_END,
    ]
    try:
        head, rest = doc.split(DOC_BEGIN + "\n", 1)
        _, tail = rest.split(DOC_END + "\n", 1)
    except ValueError:
        raise ValueError(
            f"{PROTOCOL_MD.name}: the GENERATED settings markers are missing"
        ) from None
    return header, source, head + "\n".join(md) + "\n" + tail


def _rel(path: Path) -> str:
    return str(path.relative_to(P.ROOT)) if path.is_relative_to(P.ROOT) else str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.gen_params",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the files are stale"
    )
    args = ap.parse_args(argv)
    try:
        p = P.load()
        header, tables = render(p)
        s_header, s_source, doc = render_settings(p, PROTOCOL_MD.read_text())
    except (KeyError, TypeError, ValueError) as e:
        print(f"python -m tools.gen_params: error: {P.CONFIG_PATH}: {e}", file=sys.stderr)
        return 2
    outputs = (
        (HEADER, header),
        (TABLES, tables),
        (SETTINGS_H, s_header),
        (SETTINGS_C, s_source),
        (PROTOCOL_MD, doc),
    )
    stale = [path for path, text in outputs if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {_rel(path)} (run `python -m tools.gen_params`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs:
        path.write_text(text)
    print(
        f"wrote {', '.join(_rel(path) for path, _ in outputs)} "
        f"(config {P.default().config_hash[:16]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
