<#
.SYNOPSIS
  Installs this unpacked instrument-agent release as a startup task that restarts on failure.
.DESCRIPTION
  Uses only what Windows 10+ has: PowerShell and Task Scheduler. (node.exe is not a service
  binary, so sc.exe could register it but not keep it running; a task started at boot as
  SYSTEM with restart-on-failure is the reliable built-in way.) The task runs at below-normal
  priority so the instrument's measurement software keeps the CPU.
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install-service.ps1
  powershell -ExecutionPolicy Bypass -File install-service.ps1 -Uninstall
#>
param(
  [string]$InstallDir = "$env:ProgramFiles\instrument-agent",
  [string]$ConfigDir = "$env:ProgramData\instrument-agent",
  [string]$TaskName = "instrument-agent",
  [switch]$NoStart,
  [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path

$os = [Environment]::OSVersion.Version
if ($os.Major -lt 10) {
  Write-Error ("This is Windows $os; instrument-agent needs Windows 10 / Server 2016 or newer (Node.js 20 does too). " +
    "Run the agent on a host beside the instrument instead (Linux or Windows 10+) and reach the instrument over LAN, RS-232 or GPIB-USB.")
  exit 1
}
$admin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $admin) { Write-Error "Run PowerShell as Administrator."; exit 1 }

if ($Uninstall) {
  if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
  }
  Write-Host "Removed the task $TaskName. $InstallDir and $ConfigDir are left in place."
  exit 0
}

Write-Host "Checking SHA256SUMS"
$bad = @()
foreach ($line in Get-Content (Join-Path $here "SHA256SUMS")) {
  if ($line -notmatch '^([0-9a-f]{64})  (.+)$') { continue }
  $file = Join-Path $here ($Matches[2] -replace '/', '\')
  if (-not (Test-Path -LiteralPath $file) -or (Get-FileHash -Algorithm SHA256 -LiteralPath $file).Hash.ToLower() -ne $Matches[1]) { $bad += $Matches[2] }
}
if ($bad.Count -gt 0) { Write-Error "The release is damaged ($($bad.Count) files differ, e.g. $($bad[0])): copy it again."; exit 1 }

$node = (Get-Command node.exe -ErrorAction SilentlyContinue).Source
if ($env:IAGENT_NODE) { $node = $env:IAGENT_NODE }
if (-not $node) { Write-Error "Node.js 20 or newer for Windows x64 is needed (node.exe not on PATH); or set IAGENT_NODE."; exit 1 }
$major = [int](& $node -p "process.versions.node.split('.')[0]")
if ($major -lt 20) { Write-Error "Node.js 20 or newer is needed; $node is version $major."; exit 1 }

if ((Resolve-Path $here).Path -ne $InstallDir) {
  if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) { Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue }
  New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
  Copy-Item -Path (Join-Path $here "*") -Destination $InstallDir -Recurse -Force
}
New-Item -ItemType Directory -Force -Path $ConfigDir | Out-Null
$config = Join-Path $ConfigDir "instrument-agent.yaml"
if (-not (Test-Path $config)) { Copy-Item (Join-Path $here "instrument-agent.example.yaml") $config }
$modelsSource = Join-Path $here "models-data"
if (Test-Path $modelsSource) { Copy-Item -Path $modelsSource -Destination $ConfigDir -Recurse -Force }

$action = New-ScheduledTaskAction -Execute $node -WorkingDirectory $ConfigDir `
  -Argument "`"$InstallDir\instrument-agent.mjs`" run --config `"$config`""
$trigger = New-ScheduledTaskTrigger -AtStartup
$principal = New-ScheduledTaskPrincipal -UserId "SYSTEM" -LogonType ServiceAccount -RunLevel Highest
# Priority 7 = below normal; no time limit; restart every minute after a failure.
$settings = New-ScheduledTaskSettingsSet -Priority 7 -ExecutionTimeLimit ([TimeSpan]::Zero) `
  -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
  -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force | Out-Null
if (-not $NoStart) { Start-ScheduledTask -TaskName $TaskName }

Write-Host "Installed the task $TaskName (starts at boot, restarts on failure)."
Write-Host "Config: $config"
Write-Host "Smoke test: `"$InstallDir\instrument-agent.cmd`" smoke --config `"$config`""
