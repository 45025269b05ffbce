/**
 * Must be imported before the generated proto module: makes protobufjs decode 64-bit integers as plain
 * JS numbers instead of Long objects (our ids stay far below 2^53), so ids compare and serialise simply.
 */
import $protobuf from 'protobufjs/minimal.js';

$protobuf.util.Long = undefined as unknown as typeof $protobuf.util.Long;
$protobuf.configure();
