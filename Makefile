# attnscope, on a fresh Debian 12 machine:
#   make demo   install dependencies, build (Release), run configs/minmax.yaml, render it
#   make test   install dependencies, build, run the test suite (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
RUN   ?= runs/minmax

.PHONY: all deps build demo test bench clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/cli/attnscope train configs/minmax.yaml --out $(RUN) --force
	./$(BUILD)/cli/attnscope render $(RUN)
	@echo "results: $(RUN)/ (config.yaml, train.log, metrics.jsonl, mechanism.json, checkpoints/, attention.h5, figures/)"
	@echo "per-head attention metrics: ./$(BUILD)/cli/attnscope metrics $(RUN)"
	@echo "report (open in a browser, works offline): $(abspath $(RUN))/report.html"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	./$(BUILD)/bench/minmax_bench
	./$(BUILD)/bench/render_bench --run $(RUN)

clean:
	rm -rf $(BUILD)
