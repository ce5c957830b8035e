/*
 * fsw_params.h - the parameter table, generated from fsw_params.def with the
 * FSW_PARAM X-macro. Values are kept as double, exactly as CONFIG carries
 * them; GNC modules derive their own float working copies on every change
 * (fsw_app.c) so the control path does not run on doubles.
 */
#ifndef FSW_PARAMS_H
#define FSW_PARAMS_H

#include <stddef.h>
#include <stdint.h>

/* Parameter ids: FSW_PID_<NAME> = id */
enum fsw_param_id {
    FSW_PID_NONE = 0,
#define FSW_PARAM(id, name, def, lo, hi, unit, desc) FSW_PID_##name = id,
#include "fsw_params.def"
#undef FSW_PARAM
    FSW_PID_END_
};

/* One double per parameter, named as in the table. */
typedef struct fsw_params {
#define FSW_PARAM(id, name, def, lo, hi, unit, desc) double name;
#include "fsw_params.def"
#undef FSW_PARAM
} fsw_params_t;

/* Constant description of one parameter. */
typedef struct fsw_param_info {
    uint16_t    id;
    const char *name;
    double      def;
    double      min;
    double      max;
    const char *unit;
    size_t      offset;   /* offsetof(fsw_params_t, NAME) */
} fsw_param_info_t;

/* fsw_param_set() results: same numbers as CONFIG_ACK status */
#define FSW_PARAM_OK           0
#define FSW_PARAM_UNKNOWN_ID   1
#define FSW_PARAM_OUT_OF_RANGE 2

void fsw_params_defaults(fsw_params_t *p);
/* Table lookup; NULL for an unknown id. */
const fsw_param_info_t *fsw_param_info(uint16_t id);
/* Number of parameters and the i-th entry (0-based), for listing. */
size_t fsw_param_count(void);
const fsw_param_info_t *fsw_param_at(size_t i);
/* Range check (NaN is out of range). */
int fsw_param_check(uint16_t id, double value);
/* Check and apply; *in_force (may be NULL) receives the value now in force (0 for an unknown id). */
int fsw_param_set(fsw_params_t *p, uint16_t id, double value, double *in_force);
/* Read by id; returns 0 and *value, or FSW_PARAM_UNKNOWN_ID. */
int fsw_param_get(const fsw_params_t *p, uint16_t id, double *value);

#endif /* FSW_PARAMS_H */
