// The training state a checkpoint holds (models/checkpoint.h), as the trainer names it.
#pragma once

#include "models/models.h"

namespace attnscope::train {

using models::TrainState;

}  // namespace attnscope::train
