// Fails on a promise that is dropped: a statement whose value is a promise, not awaited,
// returned or handed to `void`. The store became asynchronous (issue 16); a dropped promise
// would reorder writes and lose their errors. Run by `pnpm run typecheck`.

import ts from 'typescript';

const projects = process.argv.slice(2);
let found = 0;
for (const project of projects) {
  const configPath = ts.findConfigFile(project, ts.sys.fileExists, 'tsconfig.json');
  if (!configPath) throw new Error(`no tsconfig.json in ${project}`);
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (!config) throw new Error(`cannot read ${configPath}`);
  const program = ts.createProgram(config.fileNames, { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const isPromise = (type: ts.Type): boolean => {
    if (type.isUnion()) return type.types.some(isPromise);
    return type.getProperty('then') !== undefined && type.getProperty('catch') !== undefined;
  };
  /** A promise, or an array of them (`list.map(async …)` where values were meant). */
  const holdsPromises = (type: ts.Type): boolean => isPromise(type) || (checker.isArrayType(type) && checker.getTypeArguments(type as ts.TypeReference).some(isPromise));
  const takesAnything = (type: ts.Type): boolean => (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0;
  // `p.catch(…)` and `p.then(ok, failed)` settle whatever p does.
  const handled = (e: ts.Expression): boolean =>
    ts.isCallExpression(e) && ts.isPropertyAccessExpression(e.expression) && (e.expression.name.text === 'catch' || (e.expression.name.text === 'then' && e.arguments.length === 2));
  for (const file of program.getSourceFiles()) {
    const report = (e: ts.Node): void => {
      const { line, character } = file.getLineAndCharacterOfPosition(e.getStart(file));
      console.error(`${file.fileName}:${line + 1}:${character + 1}: a promise is dropped: await it, or hand it to background()/void with a reason`);
      found++;
    };
    if (file.isDeclarationFile || file.fileName.includes('/node_modules/')) continue;
    const visit = (node: ts.Node): void => {
      if (ts.isExpressionStatement(node)) {
        const e = node.expression;
        const dropped = !ts.isAwaitExpression(e) && !ts.isVoidExpression(e) && !handled(e) && !(ts.isBinaryExpression(e) && e.operatorToken.kind >= ts.SyntaxKind.FirstAssignment && e.operatorToken.kind <= ts.SyntaxKind.LastAssignment);
        if (dropped && isPromise(checker.getTypeAtLocation(e))) report(e);
      }
      // An arrow whose body is a promise, where a function returning nothing is expected (a
      // listener, a callback): its rejection would go nowhere.
      if (ts.isArrowFunction(node) && !ts.isBlock(node.body) && !ts.isVoidExpression(node.body) && !handled(node.body)) {
        const expected = checker.getContextualType(node);
        const returns = expected?.getCallSignatures().map((s) => s.getReturnType());
        if (returns?.length && returns.every((r) => r.flags & ts.TypeFlags.Void) && isPromise(checker.getTypeAtLocation(node.body))) report(node.body);
      }
      // A promise handed where any value goes (`unknown`, `any`: a test's t.equal, a JSON
      // answer's field) is almost always a missing await.
      if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && node.arguments) {
        const signature = checker.getResolvedSignature(node);
        node.arguments.forEach((arg, i) => {
          if (!signature || ts.isSpreadElement(arg) || !holdsPromises(checker.getTypeAtLocation(arg))) return;
          const param = signature.parameters[Math.min(i, signature.parameters.length - 1)];
          if (param && takesAnything(checker.getTypeOfSymbolAtLocation(param, node))) report(arg);
        });
      }
      // A promise in a string, or compared with a value, is a missing await too.
      if (ts.isTemplateSpan(node) && isPromise(checker.getTypeAtLocation(node.expression))) report(node.expression);
      if (ts.isBinaryExpression(node) && [ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken, ts.SyntaxKind.LessThanToken, ts.SyntaxKind.GreaterThanToken, ts.SyntaxKind.PlusToken].includes(node.operatorToken.kind)) {
        for (const side of [node.left, node.right]) if (isPromise(checker.getTypeAtLocation(side))) report(side);
      }
      // A thrown promise is no error.
      if (ts.isThrowStatement(node) && node.expression && isPromise(checker.getTypeAtLocation(node.expression))) report(node.expression);
      // A promise as a truth value is always true.
      const truth =
        ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.ExclamationToken ? node.operand
        : ts.isIfStatement(node) || ts.isWhileStatement(node) || ts.isConditionalExpression(node) ? (ts.isConditionalExpression(node) ? node.condition : node.expression)
        : ts.isBinaryExpression(node) && (node.operatorToken.kind === ts.SyntaxKind.AmpersandAmpersandToken || node.operatorToken.kind === ts.SyntaxKind.BarBarToken) ? node.left
        : undefined;
      if (truth) {
        const type = checker.getTypeAtLocation(truth);
        // `Promise | undefined` (a pending task or none) is a fair question to ask.
        if (!type.isUnion() && isPromise(type)) report(truth);
      }
      if (ts.isPropertyAssignment(node) && holdsPromises(checker.getTypeAtLocation(node.initializer))) {
        const expected = checker.getContextualType(node.initializer);
        if (!expected || takesAnything(expected)) report(node.initializer);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
}
if (found > 0) {
  console.error(`${found} dropped promise(s)`);
  process.exit(1);
}
