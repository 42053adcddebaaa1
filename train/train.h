// Public header of attnscope::train: tasks, the trainer and its events, checkpoints.
#pragma once

#include "train/baseline.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/loaded_model.h"
#include "train/events.h"
#include "train/minmax_task.h"
#include "train/molecule_task.h"
#include "train/runtime.h"
#include "train/state.h"
#include "train/task.h"
#include "train/trainer.h"
