// Public header of attnscope::core: config structs and their resolution, errors, logging,
// version, file and string helpers, SMILES splitting. No third-party types appear here.
#pragma once

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "core/smiles.h"
#include "core/strings.h"
#include "core/task_kind.h"
#include "core/version.h"
