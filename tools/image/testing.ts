/**
 * What the build's unit tests share (not part of the public API): the file names of the
 * five wheels the simulator image asks for, in the versions the Debian mirror and the
 * stand-ins give them. Tests write empty files of these names where only names count.
 */
export const SEED_WHEEL_FILES: string[] = [
  'setuptools-66.1.1-py3-none-any.whl',
  'supervisor-4.2.5-py3-none-any.whl',
  'supervisor_console-0.5.0-py3-none-any.whl',
  'supervisord_dependent_startup-1.4.0-py3-none-any.whl',
  'toposort-1.9-py3-none-any.whl',
];
