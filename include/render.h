/* Prints a compiled table as an nft script: `nft -f` of it installs exactly
 * what nft_apply_table() installs, in the layout `nft list table` prints. */
#pragma once
#include <stdio.h>
#include "ruleset.h"

/* Writes "table inet cloudviz { ... }" to f. Returns 0, -errno on a write
 * error, or -EINVAL when t holds something nft cannot express (the same
 * rules nft_apply_table() refuses; f then holds partial output).
 * The script starts by (re)creating the table atomically:
 *   table inet cloudviz
 *   delete table inet cloudviz
 *   table inet cloudviz { ... }
 * when with_replace is true, so `nft -f` of it replaces an existing one. */
int render_table(const struct fw_table *t, FILE *f, bool with_replace);
