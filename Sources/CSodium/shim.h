#ifndef BELAY_CSODIUM_SHIM_H
#define BELAY_CSODIUM_SHIM_H
#include <sodium.h>
#endif
