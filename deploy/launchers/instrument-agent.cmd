@echo off
rem instrument-agent launcher (Windows 10 or newer): checks Windows and Node.js, then runs
rem the bundle beside this file. IAGENT_NODE names another node.exe.
setlocal
set "HERE=%~dp0"
set "NEED=20"
set "WINMAJOR="
set "WINVER="
rem `ver` prints "Microsoft Windows [Version 10.0.19045.3803]" (wine: without "[Version"):
rem the last word is the version, its first number the major version.
for /f "delims=" %%v in ('ver') do set "VERLINE=%%v"
set "VERLINE=%VERLINE:[= %"
set "VERLINE=%VERLINE:]= %"
for %%t in (%VERLINE%) do set "WINVER=%%t"
for /f "tokens=1 delims=." %%m in ("%WINVER%") do set "WINMAJOR=%%m"
if not defined WINMAJOR goto checknode
if %WINMAJOR% GEQ 10 goto checknode
echo instrument-agent: this is Windows %WINVER%; the agent needs Windows 10 / Server 2016 or newer (Node.js %NEED% does too). 1>&2
echo   Run the agent on a host beside the instrument instead (Linux or Windows 10+) and reach the instrument over LAN, RS-232 or GPIB-USB. 1>&2
exit /b 1

:checknode
if not defined IAGENT_NODE set "IAGENT_NODE=node"
set "NODEMAJOR="
rem Through a file: `for /f` mangles a quoted command with quoted arguments.
set "MAJORFILE=%TEMP%\instrument-agent-node-%RANDOM%.txt"
"%IAGENT_NODE%" -p "process.versions.node.split('.')[0]" > "%MAJORFILE%" 2>nul
if exist "%MAJORFILE%" (
  set /p NODEMAJOR=<"%MAJORFILE%"
  del "%MAJORFILE%" >nul 2>nul
)
if not defined NODEMAJOR (
  echo instrument-agent: Node.js %NEED% or newer is needed, and "%IAGENT_NODE%" was not found. 1>&2
  echo   Install Node.js %NEED% LTS for Windows x64, or set IAGENT_NODE=C:\path\to\node.exe. 1>&2
  exit /b 1
)
if %NODEMAJOR% LSS %NEED% (
  echo instrument-agent: Node.js %NEED% or newer is needed; "%IAGENT_NODE%" is version %NODEMAJOR%. 1>&2
  echo   Install Node.js %NEED% LTS for Windows x64, or set IAGENT_NODE=C:\path\to\node.exe. 1>&2
  exit /b 1
)
"%IAGENT_NODE%" "%HERE%instrument-agent.mjs" %*
exit /b %ERRORLEVEL%
