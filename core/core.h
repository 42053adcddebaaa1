// Public header of attnscope::core: config structs and their resolution, errors, logging,
// version and file helpers. No third-party types appear here.
#pragma once

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/version.h"
