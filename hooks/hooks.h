// Public header of attnscope::hooks: observers of the trainer.
#pragma once

#include "hooks/attention_analysis.h"
#include "hooks/attention_metrics.h"
#include "hooks/attention_recorder.h"
#include "hooks/checkpointer.h"
#include "hooks/metrics_writer.h"
#include "hooks/progress.h"
