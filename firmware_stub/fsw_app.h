/*
 * fsw_app.h - the flight application: link protocol in, GNC cycle, link out.
 *
 * Everything lives in one context struct (no globals, no heap). A target
 * calls fsw_init() once, then fsw_rx_bytes() with every byte its UART (or
 * pipe) delivers; the flight code answers through hal->tx.
 */
#ifndef FSW_APP_H
#define FSW_APP_H

#include <stddef.h>
#include <stdint.h>

#include "fsw_attitude.h"
#include "fsw_checks.h"
#include "fsw_engine.h"
#include "fsw_guidance.h"
#include "fsw_hal.h"
#include "fsw_nav.h"
#include "fsw_params.h"
#include "fsw_protocol.h"

#ifndef FSW_FIRMWARE_ID
#define FSW_FIRMWARE_ID 0x46534C31u   /* "FSL1"; override with -DFSW_FIRMWARE_ID=0x... */
#endif
#ifndef FSW_FIRMWARE_NAME
#define FSW_FIRMWARE_NAME "fsil-ref"   /* at most 16 characters */
#endif

/*
 * COMMAND.flags bits beyond FSW_CMD_ENGINE_ON (fsw_protocol.h): status of the
 * flight code's monitors, reported in the (otherwise reserved-zero) bits of the
 * existing flags byte; the protocol layout is unchanged. See docs/protocol.md.
 */
#define FSW_CMD_ACCEL_FAILED 0x02u   /* accelerometers declared failed: navigating on the thrust model */
#define FSW_CMD_PULSE_OFF    0x04u   /* engine held off by the over-thrust pulse mode (ENGINE_ON clear) */

typedef struct fsw_ctx {
    fsw_hal_t     hal;          /* copy of the target's HAL */
    fsw_parser_t  parser;
    fsw_params_t  params;
    fsw_nav_t     nav;
    fsw_guid_t    guid;
    fsw_att_cfg_t att;
    fsw_command_t last_cmd;     /* last COMMAND sent */
    float         last_cos_err; /* attitude pointing error, cos */
    uint64_t      last_t_us;    /* t_us of the last SENSORS (0 before the first) */
    uint32_t      cycles;       /* SENSORS frames processed */
    uint32_t      overruns;     /* cycles over CYCLE_BUDGET_US */
    uint32_t      tx_frames;
    uint16_t      tx_seq;       /* next sequence number */
    uint8_t       committed;    /* COMMIT received: GNC running */
    uint8_t       have_t;       /* last_t_us valid */
    fsw_eng_t     eng;          /* engine model, thrust-scale estimate, pulse mode */
    /* second line of defence (fsw_checks.h, docs/flight-code.md) */
    fsw_chk_cfg_t  chk;
    fsw_sens_mon_t smon;        /* SENSORS against the last accepted frame; gaps, rejections */
    fsw_nav_t     nav_good;     /* navigation and guidance state at the end of the last cycle */
    fsw_guid_t    guid_good;    /* whose invariants held: the re-seed source */
    uint32_t      fault_flags;  /* FSW_FAULT_* bits, latched since COMMIT (TELEMETRY fault_flags) */
    uint32_t      reseeds;      /* cycles whose state was re-seeded from the last good one */
    uint16_t      bad_run;      /* consecutive cycles with a violated invariant */
    uint8_t       have_good;    /* nav_good/guid_good valid */
    uint8_t       safe;         /* safe mode latched (phase FSW_MODE_SAFE) */
} fsw_ctx_t;

void fsw_init(fsw_ctx_t *ctx, const fsw_hal_t *hal);
void fsw_rx_bytes(fsw_ctx_t *ctx, const uint8_t *data, size_t n);

/* The pieces fsw_rx_bytes() dispatches to, public for tests and other targets. */
void fsw_handle_msg(fsw_ctx_t *ctx, const fsw_msg_t *msg);
/* Re-initialise navigation and guidance from the parameters (what COMMIT does once the
 * configuration is plausible). */
void fsw_commit(fsw_ctx_t *ctx);
/* COMMIT with the CONFIG-as-a-whole check (fsw_chk_config, when CHK_ENABLE): returns 0 after
 * fsw_commit(), or the id of the first offending parameter (the GNC is then not running). */
uint16_t fsw_commit_checked(fsw_ctx_t *ctx);
/* Fill a TELEMETRY body from the current state. */
void fsw_fill_telemetry(const fsw_ctx_t *ctx, fsw_telemetry_t *tlm);

#endif /* FSW_APP_H */
