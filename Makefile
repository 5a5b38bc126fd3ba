# Two commands do everything on a fresh machine:
#   make lab    set up if needed, then open the workbook in JupyterLab (students; instructors: make instructor)
#   make test   set up if needed, then run the whole test suite
# The virtual environment lives in ~/.cache/simclr-workbook/venv (override: SIMCLR_VENV=...) and is
# reinstalled only when pyproject.toml changes.
SHELL := /bin/bash
.PHONY: setup system lab notebook instructor lecture test test-fast bench validate exercises bundle grade report site

setup:
	@bash scripts/setup_env.sh >/dev/null

system:
	@bash scripts/setup_system.sh

# Extra Jupyter flags: make lab LAB_ARGS="--no-browser --port 8899". Root (containers, cloud VMs) needs --allow-root.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# Two modes, each a folder of Jupyter settings put first on JUPYTER_CONFIG_PATH (the user's own Jupyter settings are
# neither read for these extensions nor changed):
#   ROLE=student     (make lab, make notebook)  the Validate button; no Formgrader, no Create Assignment panel, no
#                    Assignment/Course List (this course has no nbgrader exchange)
#   ROLE=instructor  (make instructor, or make lab/notebook ROLE=instructor)  the Formgrader and Create Assignment too
# Both keep the terminal to warnings a student can act on: the kernels' traffic is encrypted (CurveZMQ keys from the
# server, KernelManager.transport_encryption=auto; ipykernel warns of plain TCP for every kernel otherwise; the student
# mode's nbgrader_config.json asks the same for the kernel of the Validate button), notebook_shim
# is off (it loads Notebook 6 server extensions, which the workbook has none of, and its scan of the server's settings
# prints a token deprecation warning), the websocket ping timeout equals the ping interval (tornado caps it there, with a
# warning per kernel connection, when it is longer), and the file browser hides the *.egg-info folder of the editable
# install. The URL printed opens OPEN (default: 00_start_here).
ROLE ?= student
OPEN ?= notebooks/00_start_here.ipynb
JUPYTER_ENV = { [ -d "$(CURDIR)/jupyter_config/$(ROLE)" ] || { echo "ROLE must be student or instructor, not '$(ROLE)'" >&2; exit 2; }; } && \
	venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && export JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config/$(ROLE)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}"
lab:
	@$(JUPYTER_ENV) && exec "$$venv/bin/jupyter" lab $(ROOT_FLAG) $(if $(OPEN),--LabApp.default_url=/lab/tree/$(OPEN)) $(LAB_ARGS) --notebook-dir="$(CURDIR)" $(OPEN)

notebook:
	@$(JUPYTER_ENV) && exec "$$venv/bin/jupyter" notebook $(ROOT_FLAG) $(if $(OPEN),--JupyterNotebookApp.default_url=/notebooks/$(OPEN)) $(LAB_ARGS) --notebook-dir="$(CURDIR)" $(OPEN)

# Instructors: JupyterLab with the Formgrader (menu Nbgrader -> Formgrader) and the Create Assignment panel.
instructor:
	@$(MAKE) --no-print-directory lab ROLE=instructor OPEN=

# Lecture mode: the explorers one per page (lecture/), code hidden, sized for a 1920 x 1080 projector, served by Voila; it
# opens the index of pages (English and Chinese titles) in the browser (press F11 for full screen). Its settings
# (lecture/config/voila.py: the index, kernels of closed pages shut down) go first on JUPYTER_CONFIG_PATH. Extra flags:
# make lecture LECTURE_ARGS="--no-browser --port 8870". (Voila runs as root without an extra flag.)
lecture:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && \
	export JUPYTER_CONFIG_PATH="$(CURDIR)/lecture/config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" && \
	exec "$$venv/bin/voila" $(LECTURE_ARGS) "$(CURDIR)/lecture"

# Test files run TEST_JOBS at a time (pytest-xdist, one file per worker: a file's fixtures are built once; the files
# sharing tests/conftest.py's graded course count as one); TEST_JOBS=0 runs everything in this one process.
TEST_JOBS ?= 2
XDIST = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)
test:
	@bash scripts/setup_system.sh
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast:
	@venv=$$(bash scripts/setup_env.sh) && "$$venv/bin/python" -m pytest $(XDIST) -m "not slow and not browser" $(PYTEST_ARGS)

# Students: check a problem set, e.g. `make validate PS=ps1_similarity_matrix` (default: all four).
PS ?= ps1_similarity_matrix ps2_temperature ps3_batch_size ps4_applications
validate:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && \
	python scripts/validate.py $(foreach ps,$(PS),exercises/$(ps)/$(ps).ipynb)

# Instructors: regenerate exercises/ from solutions/, and build the student zip from exercises/ alone.
exercises:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && python scripts/course.py generate
bundle:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && python scripts/course.py bundle dist/simclr-exercises.zip

# Instructors: grade every submission in grading/submitted/ of the problem sets PS (default: all four), JOBS side by
# side (default: the cores this machine lets the grading use), each in a bubblewrap sandbox, one line per submission
# as it finishes, then the run's summary and the table per problem set (python -m grader.grade; docs/instructors.md).
# A submission that cannot be graded is listed as "needs review: <reason>" and the others are graded; exercises/ is
# never written. A submission graded as it is now (same files, same problem set) is not graded again unless FORCE=1.
# One student: STUDENT=alice (with FORCE=1: grade her again).
grade:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && \
	python -m grader.grade $(PS) $(foreach s,$(STUDENT),--student $(s)) $(if $(filter 1,$(FORCE)),--force) \
	$(if $(JOBS),--jobs $(JOBS))

# Instructors: the class report of the problem sets PS (default: all four): per question the score distribution, each
# named mistake and how many made it, blanks, limits, reviews; the questions by points lost (python -m grader.report;
# printed, and a page in grading/reports/<ps>.html). No student names unless NAMES=1 (then <ps>-names.html).
report:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && \
	python -m grader.report $(PS) $(if $(filter 1,$(NAMES)),--names)

bench:
	@venv=$$(bash scripts/setup_env.sh) && for b in benchmarks/bench_*.py; do "$$venv/bin/python" "$$b"; done

# The rendered workbook: every notebook executed, into build/site/html (SMOKE=1: tiny data, about 1.5 minutes).
site:
	@venv=$$(bash scripts/setup_env.sh) && export PATH="$$venv/bin:$$PATH" && \
	python scripts/build_site.py $(if $(filter 1,$(SMOKE)),--smoke)
