"""The loopback target: the flight code compiled into an in-process cffi module.

``load_flight_code()`` compiles the sources of ``firmware_stub/sources.txt`` plus the loopback HAL
``hal_loopback.c`` with :data:`FLIGHT_CFLAGS` (each object by the compiler directly, so a compile
error is a :class:`BuildError` naming the file), links them into a cffi API-mode extension and
imports it. The module is cached like every build (``harness.targets.build``) under
``$FSIL_CACHE_DIR/cffi/``, keyed by every C source, header, ``.def`` and ``sources.txt`` of the
source directory, the flags, the cdef below, the compiler and the Python/cffi versions.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import shlex
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.targets.build import FLIGHT_CFLAGS, BuildError, cache_dir, cached_build, run_compiler
from harness.targets.sources import content_key, flight_sources, source_dir

#: Target-specific source of the in-process (loopback) target.
LOOPBACK_SOURCES: tuple[str, ...] = ("hal_loopback.c",)


def parse_param_table(def_path: str | Path) -> list[dict[str, Any]]:
    """``fsw_params.def`` as dicts (id, name, default, min, max, unit, description), in file order.

    One parser serves every consumer: this is ``harness.params.load_param_table`` reshaped.
    """
    from harness.params import load_param_table

    table = load_param_table(Path(def_path).parent)
    return [dict(id=s.id, name=s.name, default=s.default, min=s.min, max=s.max, unit=s.unit,
                 description=s.doc) for s in table.values()]


# ---------------------------------------------------------------- the cdef
# Structs end with "...;" so cffi takes the real layout from the compiler:
# the C headers stay the single definition of every layout.

_CDEF_TEMPLATE = r"""
typedef struct fsw_hal {
    void *user;
    void (*tx)(void *user, const uint8_t *data, size_t n);
    uint64_t (*now_us)(void *user);
} fsw_hal_t;

#define FSW_PROTO_VERSION ...
#define FSW_HDR_LEN ...
#define FSW_CRC_LEN ...
#define FSW_MAX_PACKET ...
#define FSW_MAX_ENCODED ...
#define FSW_RX_BUF_LEN ...
#define FSW_MAX_FRAME ...
#define FSW_MSG_HELLO ...
#define FSW_MSG_CONFIG ...
#define FSW_MSG_CONFIG_ACK ...
#define FSW_MSG_SENSORS ...
#define FSW_MSG_COMMAND ...
#define FSW_MSG_TELEMETRY ...
#define FSW_CONFIG_COMMIT ...
#define FSW_SENS_LRF_VALID ...
#define FSW_SENS_IMU_VALID ...
#define FSW_SENS_LRF_NEW ...
#define FSW_CMD_ENGINE_ON ...
#define FSW_LOOPBACK_TX_CAP ...

typedef enum fsw_rx_result {
    FSW_RX_OK, FSW_RX_EMPTY, FSW_RX_FRAMING, FSW_RX_CRC, FSW_RX_LENGTH, FSW_RX_UNKNOWN
} fsw_rx_result_t;

typedef struct fsw_header { uint8_t version; uint8_t msg_type; uint16_t seq; uint64_t t_us; } fsw_header_t;
typedef struct fsw_hello { uint16_t protocol_version; uint16_t reserved; uint32_t firmware_id; char firmware_name[16]; } fsw_hello_t;
typedef struct fsw_config { uint16_t param_id; uint16_t flags; double value; } fsw_config_t;
typedef struct fsw_config_ack { uint16_t param_id; uint16_t status; double value; } fsw_config_ack_t;
typedef struct fsw_sensors {
    float imu_dv_body[3]; float imu_dtheta_body[3]; uint32_t imu_dt_us; float lrf_range;
    uint64_t lrf_sample_t_us; uint8_t flags; uint8_t reserved[3];
} fsw_sensors_t;
typedef struct fsw_command {
    float throttle; float torque_body[3]; uint16_t sensors_seq; uint8_t mode; uint8_t flags; uint32_t reserved;
} fsw_command_t;
typedef struct fsw_telemetry {
    double est_r_mci[3]; float est_v_mci[3]; float est_q_mci_body[4]; float est_alt; float lrf_innovation;
    uint8_t phase; uint8_t lrf_status; uint16_t lrf_rejects; uint16_t rx_crc_errors; uint16_t rx_framing_errors;
    uint16_t rx_length_errors; uint16_t rx_unknown_msgs; uint16_t rx_frames_ok; uint16_t cycle_overruns;
} fsw_telemetry_t;
typedef struct fsw_msg {
    fsw_header_t hdr;
    union {
        fsw_hello_t hello; fsw_config_t config; fsw_config_ack_t config_ack;
        fsw_sensors_t sensors; fsw_command_t command; fsw_telemetry_t telemetry;
    } body;
} fsw_msg_t;

typedef struct fsw_parser {
    uint8_t buf[256]; uint16_t len; uint8_t discarding; uint8_t last_result;
    uint32_t crc_errors; uint32_t framing_errors; uint32_t length_errors; uint32_t unknown_msgs; uint32_t frames_ok;
    ...;
} fsw_parser_t;

uint16_t fsw_crc16_update(uint16_t crc, const uint8_t *data, size_t n);
uint16_t fsw_crc16(const uint8_t *data, size_t n);
size_t fsw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);
int fsw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);
int fsw_body_len(uint8_t msg_type);
size_t fsw_msg_pack(const fsw_msg_t *msg, uint8_t *packet, size_t cap);
size_t fsw_msg_encode_frame(const fsw_msg_t *msg, uint8_t *frame, size_t cap);
fsw_rx_result_t fsw_msg_unpack(const uint8_t *packet, size_t n, fsw_msg_t *msg);
void fsw_parser_init(fsw_parser_t *p);
int fsw_parser_push(fsw_parser_t *p, uint8_t byte, fsw_msg_t *msg);

/* parameters (struct generated from fsw_params.def) */
typedef struct fsw_params {
%(param_fields)s
} fsw_params_t;
typedef struct fsw_param_info {
    uint16_t id; const char *name; double def; double min; double max; const char *unit; size_t offset;
} fsw_param_info_t;
void fsw_params_defaults(fsw_params_t *p);
const fsw_param_info_t *fsw_param_info(uint16_t id);
size_t fsw_param_count(void);
const fsw_param_info_t *fsw_param_at(size_t i);
int fsw_param_check(uint16_t id, double value);
int fsw_param_set(fsw_params_t *p, uint16_t id, double value, double *in_force);
int fsw_param_get(const fsw_params_t *p, uint16_t id, double *value);

/* navigation */
typedef struct fsw_nav_cfg {
    double gm; double site_radius; float acc_psd; float lrf_sigma; float lrf_sigma_rel; float gate_nsigma;
    float gate_min; float reacq_tol; float bore_body[3]; float lrf_pos_body[3]; float cos_max_offnadir; uint16_t reacq_n;
    uint8_t gate_policy; ...;
} fsw_nav_cfg_t;
typedef struct fsw_nav {
    fsw_nav_cfg_t cfg; double r[3]; double v[3]; float q[4]; float w_body[3];
    float p00; float p01; float p11; float lrf_innovation; float lrf_meas_alt; float reacq_last;
    uint32_t lrf_rejects; uint32_t lrf_accepts; uint16_t reacq_count; uint8_t lrf_status; uint8_t latched_out;
    ...;
} fsw_nav_t;
void fsw_nav_configure(fsw_nav_t *nav, const fsw_params_t *p);
void fsw_nav_reset(fsw_nav_t *nav, const fsw_params_t *p);
void fsw_nav_propagate(fsw_nav_t *nav, const float dv_body[3], const float dtheta_body[3], float dt);
uint8_t fsw_nav_lrf_update(fsw_nav_t *nav, float range, float latency_s);
void fsw_nav_lrf_invalid(fsw_nav_t *nav);
double fsw_nav_radius(const fsw_nav_t *nav);
double fsw_nav_alt(const fsw_nav_t *nav);
void fsw_nav_up(const fsw_nav_t *nav, float up[3]);
float fsw_nav_vr(const fsw_nav_t *nav);
float fsw_nav_gravity(const fsw_nav_t *nav);

/* guidance */
typedef struct fsw_guid_cfg {
    float a_plan; float v_max; float v_term; float h_term; float td_cut; float kv; float kh; float ah_max;
    float tan_tilt_max; float cont_alt; float a_cont; float v_max_cont; float cont_margin;
    float thrust_max; float throttle_min; float inv_ve; uint8_t cont_enable; ...;
} fsw_guid_cfg_t;
typedef struct fsw_guid_in {
    float alt; float up[3]; float v[3]; float g; float to_site[3]; float radius; float dt; uint8_t lrf_locked; ...;
} fsw_guid_in_t;
typedef struct fsw_guid {
    fsw_guid_cfg_t cfg; float mass; float thrust_dir[3]; float throttle; float v_ref; float a_cmd[3];
    float tgo; float x_go; float site_dist; float hold_t;
    uint8_t phase; uint8_t engine_on; uint8_t started; uint8_t hold_done; ...;
} fsw_guid_t;
void fsw_guid_configure(fsw_guid_t *g, const fsw_params_t *p);
void fsw_guid_reset(fsw_guid_t *g, const fsw_params_t *p);
void fsw_guid_step(fsw_guid_t *g, const fsw_guid_in_t *in);
float fsw_guid_v_down(const fsw_guid_cfg_t *c, uint8_t phase, float alt, float *a_ff);
void fsw_guid_burn(fsw_guid_t *g, float throttle, float dt);
float fsw_guid_atan2_pos(float s, float c);

/* attitude */
typedef struct fsw_att_cfg { float kp; float kd; float tmax[3]; float cos_thr; float throttle_min; ...; } fsw_att_cfg_t;
typedef struct fsw_att_out { float torque_body[3]; float throttle; float cos_err; ...; } fsw_att_out_t;
void fsw_att_configure(fsw_att_cfg_t *c, const fsw_params_t *p);
void fsw_att_step(const fsw_att_cfg_t *c, const float q_mci_body[4], const float w_body[3],
                  const float thrust_dir_mci[3], float throttle, fsw_att_out_t *out);

/* application */
typedef struct fsw_ctx {
    fsw_hal_t hal; fsw_parser_t parser; fsw_params_t params; fsw_nav_t nav; fsw_guid_t guid; fsw_att_cfg_t att;
    fsw_command_t last_cmd; float last_cos_err; uint64_t last_t_us; uint32_t cycles; uint32_t overruns;
    uint32_t tx_frames; uint16_t tx_seq; uint8_t committed; uint8_t have_t;
    ...;
} fsw_ctx_t;
void fsw_init(fsw_ctx_t *ctx, const fsw_hal_t *hal);
void fsw_rx_bytes(fsw_ctx_t *ctx, const uint8_t *data, size_t n);
void fsw_handle_msg(fsw_ctx_t *ctx, const fsw_msg_t *msg);
void fsw_commit(fsw_ctx_t *ctx);
void fsw_fill_telemetry(const fsw_ctx_t *ctx, fsw_telemetry_t *tlm);

/* loopback target */
typedef struct fsw_loopback {
    fsw_ctx_t fsw; fsw_hal_t hal; uint8_t tx_buf[4096]; size_t tx_len; uint32_t tx_overflow;
    ...;
} fsw_loopback_t;
size_t fsw_loopback_size(void);
void fsw_loopback_init(fsw_loopback_t *lb);
void fsw_loopback_feed(fsw_loopback_t *lb, const uint8_t *data, size_t n);
size_t fsw_loopback_drain(fsw_loopback_t *lb, uint8_t *out, size_t cap);
size_t fsw_msg_size(void);
size_t fsw_parser_size(void);
size_t fsw_test_parse(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_t *msgs, size_t max_msgs);
int fsw_test_decode_frame(const uint8_t *frame, size_t n, fsw_msg_t *msg);
"""


def _cdef(src: Path) -> str:
    params = parse_param_table(src / "fsw_params.def")
    fields = "\n".join(f"    double {p['name']};" for p in params)
    return _CDEF_TEMPLATE % {"param_fields": fields}


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _build_key(src: Path, cflags: Sequence[str], cdef: str) -> str:
    import cffi

    files = {p for p in src.iterdir() if p.is_file() and p.suffix in (".c", ".h", ".def")}
    files.add(src / "sources.txt")
    files.update(flight_sources(src))
    return content_key(files, [" ".join(cflags), " ".join(_compiler()), cdef, sys.version,
                               sysconfig.get_config_var("EXT_SUFFIX") or "", cffi.__version__])


def _build(src: Path, modname: str, cflags: Sequence[str], cdef: str, out: Path) -> None:
    """Compile the objects and the cffi module ``modname`` into ``out`` (a fresh directory)."""
    import cffi

    work = out / "build"
    work.mkdir()
    objs: list[str] = []
    for i, c_file in enumerate(flight_sources(src) + [src / s for s in LOOPBACK_SOURCES]):
        obj = work / f"{i:02d}_{c_file.stem}.o"
        run_compiler(_compiler() + list(cflags) + ["-fPIC", "-I", str(src), "-c", str(c_file), "-o", str(obj)],
                     f"compiling {c_file.name} for the loopback target")
        objs.append(str(obj))
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(modname, '#include "hal_loopback.h"\n', include_dirs=[str(src)], extra_objects=objs,
                   extra_compile_args=["-ffp-contract=off"])
    try:
        built = Path(ffi.compile(tmpdir=str(work), verbose=False))
    except Exception as exc:  # cffi.VerificationError, distutils errors
        raise BuildError(f"building the cffi module {modname} failed: {exc}") from exc
    os.replace(built, out / built.name)
    shutil.rmtree(work, ignore_errors=True)


_loaded: dict[str, tuple[Any, Any]] = {}
_lock = threading.Lock()


def load_flight_code(src_dir: str | Path | None = None, *, extra_cflags: Iterable[str] = ()) -> tuple[Any, Any]:
    """Compile (if needed) and import the flight code; return ``(ffi, lib)``.

    ``src_dir`` defaults to the repository's ``firmware_stub``. ``extra_cflags``
    (e.g. ``["-DFSW_FIRMWARE_ID=0x1234"]``) are appended to :data:`FLIGHT_CFLAGS`
    and are part of the cache key.
    """
    src = source_dir(src_dir)
    cflags = list(FLIGHT_CFLAGS) + list(extra_cflags)
    cdef = _cdef(src)
    modname = f"_fsil_fsw_{_build_key(src, cflags, cdef)}"
    with _lock:
        if modname in _loaded:
            return _loaded[modname]
        built = cached_build(cache_dir("cffi"), modname, lambda out: _build(src, modname, cflags, cdef, out))
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        path = built / f"{modname}{suffix}"
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise BuildError(f"cannot import {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[modname] = mod
        _loaded[modname] = (mod.ffi, mod.lib)
        return _loaded[modname]


class LoopbackFlightCode:
    """One flight-code instance in this process: bytes in as from a UART, bytes out.

    >>> fc = LoopbackFlightCode()
    >>> hello = fc.drain()          # the HELLO frame sent at boot
    >>> fc.feed(frame_bytes); out = fc.drain()
    """

    def __init__(self, src_dir: str | Path | None = None, *, extra_cflags: Iterable[str] = ()):
        self.ffi, self.lib = load_flight_code(src_dir, extra_cflags=extra_cflags)
        self.lb = self.ffi.new("fsw_loopback_t *")
        self.lib.fsw_loopback_init(self.lb)
        self._out = self.ffi.new("uint8_t[]", int(self.lib.FSW_LOOPBACK_TX_CAP))

    def feed(self, data: bytes) -> None:
        """Deliver bytes to the flight code (it may answer into its TX buffer)."""
        self.lib.fsw_loopback_feed(self.lb, data, len(data))

    def drain(self) -> bytes:
        """Bytes the flight code transmitted since the last drain."""
        n = self.lib.fsw_loopback_drain(self.lb, self._out, len(self._out))
        return bytes(self.ffi.buffer(self._out, n))

    @property
    def ctx(self) -> Any:
        """The flight code's context struct (``fsw_ctx_t``), for white-box inspection."""
        return self.lb.fsw

    @property
    def tx_overflow(self) -> int:
        return int(self.lb.tx_overflow)
