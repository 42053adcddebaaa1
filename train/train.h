// Public header of attnscope::train: the task interfaces (what training, hooks and the run
// directory each need) and the tasks, one per task kind, built through the task registry; the
// trainer and its events; metrics and masking; molecule probes and a task over a loaded model;
// the baseline; distributed training. Other folders include this header only.
#pragma once

#include "train/baseline.h"
#include "train/distributed.h"
#include "train/events.h"
#include "train/masking.h"
#include "train/metrics.h"
#include "train/minmax_task.h"
#include "train/model_task.h"
#include "train/molecule_tasks.h"
#include "train/runtime.h"
#include "train/state.h"
#include "train/task.h"
#include "train/trainer.h"
