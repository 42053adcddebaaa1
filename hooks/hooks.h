// Public header of attnscope::hooks: observers of the trainer.
#pragma once

#include "hooks/checkpointer.h"
#include "hooks/metrics_writer.h"
#include "hooks/progress.h"
