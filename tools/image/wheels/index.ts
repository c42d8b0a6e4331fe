/** The simulator image's Python wheels, made from the host's Debian mirror and local stand-ins where PyPI cannot be reached. */
export { DEBIAN_WHEEL_PACKAGES, STANDIN_LABEL, LABEL_PYTHON_STANDINS, isStandinWheel, labelStandinImages, makeSeedWheels, makeStandinWheels, parseWheelFile, writeSimpleIndex, type MadeWheels, type MakeWheelsOptions, type WheelFile } from './wheels.js';
