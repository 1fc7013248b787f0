# cp refuses what it cannot do with one clear line and a non-zero exit.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" volume create small --size 1M
head -c 2097152 /dev/zero >"$TMP/big"
expect_exit 2 "$COWBLK" cp "$TMP/big" vol:small
expect_one_error_line
expect_error "only 1048576"
expect_exit 4 "$COWBLK" cp vol:missing "$TMP/x"
expect_one_error_line
expect_exit 4 "$COWBLK" cp "$TMP/big" vol:missing
expect_exit 4 "$COWBLK" cp "$TMP/nonexistent" vol:small
expect_one_error_line
expect_exit 2 "$COWBLK" cp vol:small vol:small
expect_one_error_line
expect_exit 2 "$COWBLK" cp vol: "$TMP/x"
