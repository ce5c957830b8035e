/*
 * fsw_params.c - defaults, range check and set-by-id for the table in
 * fsw_params.def. The descriptor table is const (flash on the target).
 */
#include "fsw_params.h"

#include <string.h>

static const fsw_param_info_t k_params[] = {
#define FSW_PARAM(id, name, def, lo, hi, unit, desc) \
    { (uint16_t)(id), #name, (def), (lo), (hi), unit, offsetof(fsw_params_t, name) },
#include "fsw_params.def"
#undef FSW_PARAM
};

#define N_PARAMS (sizeof k_params / sizeof k_params[0])

static double *slot(fsw_params_t *p, const fsw_param_info_t *info)
{
    return (double *)(void *)((uint8_t *)p + info->offset);
}

void fsw_params_defaults(fsw_params_t *p)
{
    size_t i;
    memset(p, 0, sizeof *p);
    for (i = 0; i < N_PARAMS; i++) {
        *slot(p, &k_params[i]) = k_params[i].def;
    }
}

const fsw_param_info_t *fsw_param_info(uint16_t id)
{
    size_t i;
    for (i = 0; i < N_PARAMS; i++) {
        if (k_params[i].id == id) {
            return &k_params[i];
        }
    }
    return NULL;
}

size_t fsw_param_count(void)
{
    return N_PARAMS;
}

const fsw_param_info_t *fsw_param_at(size_t i)
{
    return i < N_PARAMS ? &k_params[i] : NULL;
}

int fsw_param_check(uint16_t id, double value)
{
    const fsw_param_info_t *info = fsw_param_info(id);
    if (info == NULL) {
        return FSW_PARAM_UNKNOWN_ID;
    }
    /* Written so that NaN fails both comparisons and is rejected. */
    if (!(value >= info->min && value <= info->max)) {
        return FSW_PARAM_OUT_OF_RANGE;
    }
    return FSW_PARAM_OK;
}

int fsw_param_set(fsw_params_t *p, uint16_t id, double value, double *in_force)
{
    const fsw_param_info_t *info = fsw_param_info(id);
    int rc = fsw_param_check(id, value);
    if (rc == FSW_PARAM_OK) {
        *slot(p, info) = value;
    }
    if (in_force != NULL) {
        *in_force = info != NULL ? *slot(p, info) : 0.0;
    }
    return rc;
}

int fsw_param_get(const fsw_params_t *p, uint16_t id, double *value)
{
    const fsw_param_info_t *info = fsw_param_info(id);
    if (info == NULL) {
        return FSW_PARAM_UNKNOWN_ID;
    }
    *value = *(const double *)(const void *)((const uint8_t *)p + info->offset);
    return FSW_PARAM_OK;
}
