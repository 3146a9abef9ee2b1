// Writes the fixture ONNX models (test/fixtures/models/) that the tests and the demo use.
import { writeFixtureModels } from '../test/fixtures/models.js';

const dir = writeFixtureModels(process.argv[2]);
process.stdout.write(`fixture models written to ${dir}\n`);
