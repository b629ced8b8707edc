# Debian package of pullunit, built outside the source tree (Debian 12, as root or not).
#
#   make deb       out/pullunit_VERSION_all.deb (+ .buildinfo, .changes), via
#                  dpkg-buildpackage -us -uc -b in build/deb/pullunit-VERSION/
#   make lintian   lintian on that .deb; fails on any error or warning
#   make man       build/man/*.1 *.5 *.8 from docs/man/*.scd, to preview with man -l
#   make clean     remove build/deb, build/man and out/
#
# The version lives in one place, __version__ in pullunit/__init__.py: the build copy of
# debian/changelog gets it written into its top entry (PEP 440 pre-releases become
# Debian "~" versions), and the man pages and the package read it from there.
# Build dependencies: see Build-Depends in packaging/debian/control (scripts/setup
# installs them); dpkg-buildpackage checks them first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:

VERSION := $(shell sed -n 's/^__version__ = "\([^"]*\)"$$/\1/p' pullunit/__init__.py)
ifeq ($(VERSION),)
$(error cannot read __version__ from pullunit/__init__.py)
endif
DEB_VERSION := $(shell echo '$(VERSION)' | sed -E 's/\.?(a|b|rc|dev)([0-9]*)/~\1\2/g; s/\.post/+post/')

BUILD_DIR := build/deb
SRC_COPY  := $(BUILD_DIR)/pullunit-$(DEB_VERSION)
OUT       := out
DEB       := $(OUT)/pullunit_$(DEB_VERSION)_all.deb

# What goes into the build copy: what pyproject.toml builds, plus what the package adds.
SRC_FILES := pyproject.toml README.md $(wildcard LICENSE*)
SRC_DIRS  := pullunit templates units examples docs completion
SOURCES   := $(SRC_FILES) Makefile \
	$(shell find $(SRC_DIRS) packaging/debian -type f ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null)

# The system toolchain only: no virtualenv, pyenv or user site packages in the build.
BUILD_ENV := env -u PYTHONPATH -u VIRTUAL_ENV -u PYTHONHOME -u PYTHONSTARTUP \
	PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 PYTHONNOUSERSITE=1

LINTIAN_OPTS ?=

.PHONY: deb lintian man clean version

deb: $(DEB)

version:
	@echo $(DEB_VERSION)

$(DEB): $(SOURCES)
	rm -rf $(BUILD_DIR)
	mkdir -p $(SRC_COPY) $(OUT)
	@date +%s > $(BUILD_DIR)/.started
	tar -c --exclude=__pycache__ --exclude='*.pyc' $(SRC_FILES) $(SRC_DIRS) | tar -x -C $(SRC_COPY)
	cp -a packaging/debian $(SRC_COPY)/debian
	sed -i '1s/^pullunit ([^)]*)/pullunit ($(DEB_VERSION))/' $(SRC_COPY)/debian/changelog
	cd $(SRC_COPY) && $(BUILD_ENV) dpkg-buildpackage -us -uc -b
	cp $(BUILD_DIR)/pullunit_$(DEB_VERSION)_all.deb $(BUILD_DIR)/pullunit_$(DEB_VERSION)_*.buildinfo \
		$(BUILD_DIR)/pullunit_$(DEB_VERSION)_*.changes $(OUT)/
	@echo "built $(DEB): $$(stat -c %s $(DEB)) bytes in $$(( $$(date +%s) - $$(cat $(BUILD_DIR)/.started) )) s"

lintian: $(DEB)
	lintian --fail-on error,warning $(LINTIAN_OPTS) $(DEB)

man:
	mkdir -p build/man
	for scd in docs/man/*.scd; do \
		page=$${scd##*/}; page=$${page%.scd}; \
		sed '1s/^\([^ ]*([0-9])\).*/\1 "pullunit $(VERSION)"/' $$scd | scdoc > build/man/$$page; \
	done
	@echo "preview: man -l build/man/pullunit.1"

clean:
	rm -rf $(BUILD_DIR) build/man $(OUT)
